"""Two processes racing on the same records: no write is lost, every create has one winner."""

from __future__ import annotations

import asyncio
import json
import sys

from flotilla.metadata import Descriptor, Image, Metadata

NS = "races"
ROUNDS = 60
DIGEST = "sha256:" + "c" * 64
TARGET = Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST)

# Each writer sets its own labels on one shared image, one update per label (a read, a change,
# a compare-and-set), and tries to create every container id; it prints which it created.
WRITER = """
import asyncio, json, sys
import nats
from flotilla.common import errdefs
from flotilla.metadata import AnyValue, Container, Image, Metadata, Runtime

async def main(url, me, rounds):
    nc = await nats.connect(url)
    metadata = await Metadata.open(nc)
    spec = AnyValue(type_url="spec", value=b"{}")
    won = []
    for i in range(rounds):
        current = await metadata.images.get("races", "shared")
        wanted = Image(name="shared", target=current.target, labels={f"{me}-{i}": "set"})
        await metadata.images.update("races", wanted, [f"labels.{me}-{i}"])
        made = Container(id=f"c{i}", runtime=Runtime(name="rt"), spec=spec)
        try:
            await metadata.containers.create("races", made)
            won.append(i)
        except errdefs.AlreadyExists:
            pass
    print(json.dumps(won), flush=True)
    await nc.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _writer(url: str, me: str) -> list[int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, url, me, str(ROUNDS), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    won: list[int] = json.loads(out)
    return won


async def test_racing_writers_lose_nothing(metadata: Metadata, nats_url: str) -> None:
    await metadata.images.create(NS, Image(name="shared", target=TARGET))

    first, second = await asyncio.gather(_writer(nats_url, "a"), _writer(nats_url, "b"))

    image = await metadata.images.get(NS, "shared")
    assert set(image.labels) == {f"{me}-{i}" for me in "ab" for i in range(ROUNDS)}
    assert sorted(first + second) == list(range(ROUNDS))
    assert not set(first) & set(second)
    listed = {container.id async for container in metadata.containers.list(NS)}
    assert listed == {f"c{i}" for i in range(ROUNDS)}
