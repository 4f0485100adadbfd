"""The images service of a node, over the bus: pulls (with their progress), imports, exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec
from nats.aio.msg import Msg

from flotilla.common.bus import Bus
from flotilla.images import api
from flotilla.images.pull.progress import BlobProgress

__all__ = ["PULL_TIMEOUT", "ImagesProxy"]

PULL_TIMEOUT: Final = 3600.0
_progress: Final = msgspec.msgpack.Decoder(BlobProgress)


class ImagesProxy:
    """The images service's node-local endpoints, over the bus."""

    def __init__(self, bus: Bus, timeout: float = PULL_TIMEOUT) -> None:
        self.bus = bus
        self.timeout = timeout

    async def pull(
        self,
        namespace: str,
        request: api.PullRequest,
        *,
        node: str | None = None,
        progress: Callable[[BlobProgress], None] | None = None,
    ) -> api.PullResult:
        """Pull into ``node`` (default: this process's), reporting each blob to ``progress``.

        Raises:
            Whatever the pull raised (NotFound, InvalidArgument, FailedPrecondition, ...).
        """
        node = node or self.bus.node
        if progress is None:
            return await self._call(namespace, request, node)
        inbox = self.bus.nc.new_inbox()

        async def on_message(msg: Msg) -> None:
            progress(_progress.decode(msg.data))

        subscription = await self.bus.nc.subscribe(inbox, cb=on_message)
        try:
            await self.bus.flush()
            reporting = msgspec.structs.replace(request, progress=inbox)
            return await self._call(namespace, reporting, node)
        finally:
            await subscription.unsubscribe()

    async def import_archive(
        self, namespace: str, request: api.ImportRequest, *, node: str | None = None
    ) -> api.ImportResult:
        """Import a tarball on ``node``'s disk (default: this process's node)."""
        return await self.bus.call(
            api.IMPORT,
            request,
            namespace=namespace,
            node=node or self.bus.node,
            timeout=self.timeout,
        )

    async def export_archive(
        self, namespace: str, request: api.ExportRequest, *, node: str | None = None
    ) -> api.Exported:
        """Export images to a tarball on ``node``'s disk (default: this process's node)."""
        return await self.bus.call(
            api.EXPORT,
            request,
            namespace=namespace,
            node=node or self.bus.node,
            timeout=self.timeout,
        )

    async def _call(self, namespace: str, request: api.PullRequest, node: str) -> api.PullResult:
        return await self.bus.call(
            api.PULL, request, namespace=namespace, node=node, timeout=self.timeout
        )
