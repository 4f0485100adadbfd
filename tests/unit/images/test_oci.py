"""Manifests, indexes and configs are decoded strictly, and bad ones named in the error."""

from __future__ import annotations

import json

import pytest

from flotilla.common import errdefs
from flotilla.images import oci

D = "sha256:" + "a" * 64
MANIFEST = oci.Descriptor(media_type=oci.OCI_MANIFEST, digest=D, size=1)
CONFIG = oci.Descriptor(media_type=oci.OCI_CONFIG, digest="sha256:" + "c" * 64, size=1)


def manifest_json(**changes: object) -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": "sha256:" + "b" * 64, "size": 3},
        "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": "sha256:" + "d" * 64, "size": 9}],
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_a_manifest_round_trips() -> None:
    manifest = oci.decode_manifest(manifest_json(), MANIFEST)
    assert manifest.layers[0].size == 9
    assert oci.decode_manifest(oci.encode(manifest), MANIFEST) == manifest


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "malformed|JSON"),
        (manifest_json(mediaType=oci.OCI_INDEX), "declares media type"),
        (manifest_json(config=None), "config"),
        (
            manifest_json(config={"mediaType": "text/plain", "digest": D, "size": 1}),
            "not an image config",
        ),
        (
            manifest_json(layers=[{"mediaType": oci.OCI_LAYER, "digest": "sha256:xyz", "size": 1}]),
            "invalid digest",
        ),
        (b" " * (oci.MAX_DOCUMENT + 1), "more than"),
    ],
)
def test_bad_manifests_name_the_blob(body: bytes, match: str) -> None:
    with pytest.raises(errdefs.InvalidArgument, match=match) as caught:
        oci.decode_manifest(body, MANIFEST)
    assert D in str(caught.value)


def test_a_config_needs_one_diff_id_per_layer() -> None:
    body = json.dumps({"rootfs": {"type": "layers", "diff_ids": [D]}}).encode()
    assert oci.decode_config(body, CONFIG, 1).rootfs.diff_ids == [D]
    with pytest.raises(errdefs.InvalidArgument, match="1 diffIDs for 2 layers"):
        oci.decode_config(body, CONFIG, 2)


def test_ref_keys_are_containerds() -> None:
    assert oci.ref_key(MANIFEST) == f"manifest-{D}"
    layer = oci.Descriptor(media_type=oci.DOCKER_LAYER, digest=D, size=1)
    assert oci.ref_key(layer) == f"layer-{D}"
    assert oci.ref_key(CONFIG).startswith("config-")
