"""The images service of a node, over the bus: pulls, pushes, imports and exports.

Pulls and pushes report each blob's progress, as it happens, to a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

import msgspec
from nats.aio.msg import Msg

from flotilla.common.bus import Bus
from flotilla.common.bus.methods import Unary
from flotilla.images import api
from flotilla.images.pull.progress import BlobProgress

__all__ = ["PULL_TIMEOUT", "ImagesProxy", "Progress"]

PULL_TIMEOUT: Final = 3600.0
_progress: Final = msgspec.msgpack.Decoder(BlobProgress)

Progress = Callable[[BlobProgress], None]
_Req = TypeVar("_Req", api.PullRequest, api.PushRequest)
_Resp = TypeVar("_Resp", api.PullResult, api.Pushed)


class ImagesProxy:
    """The images service's node-local endpoints, over the bus.

    Every method takes the node to act on (default: this process's node).
    """

    def __init__(self, bus: Bus, timeout: float = PULL_TIMEOUT) -> None:
        self.bus = bus
        self.timeout = timeout

    async def pull(
        self,
        namespace: str,
        request: api.PullRequest,
        *,
        node: str | None = None,
        progress: Progress | None = None,
    ) -> api.PullResult:
        """Pull into ``node``, reporting each blob to ``progress``.

        Raises:
            Whatever the pull raised (NotFound, InvalidArgument, FailedPrecondition, ...).
        """
        return await self._reporting(api.PULL, namespace, request, node, progress)

    async def push(
        self,
        namespace: str,
        request: api.PushRequest,
        *,
        node: str | None = None,
        progress: Progress | None = None,
    ) -> api.Pushed:
        """Push an image from ``node``'s content store, reporting each blob to ``progress``."""
        return await self._reporting(api.PUSH, namespace, request, node, progress)

    async def import_archive(
        self, namespace: str, request: api.ImportRequest, *, node: str | None = None
    ) -> api.ImportResult:
        """Import a tarball on ``node``'s disk."""
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
        """Export images to a tarball on ``node``'s disk."""
        return await self.bus.call(
            api.EXPORT,
            request,
            namespace=namespace,
            node=node or self.bus.node,
            timeout=self.timeout,
        )

    async def _reporting(
        self,
        method: Unary[_Req, _Resp],
        namespace: str,
        request: _Req,
        node: str | None,
        progress: Progress | None,
    ) -> _Resp:
        """Call ``method``, with its progress published on a fresh inbox while it runs."""
        node = node or self.bus.node
        if progress is None:
            return await self._call(method, namespace, request, node)
        inbox = self.bus.nc.new_inbox()
        report = progress

        async def on_message(msg: Msg) -> None:
            report(_progress.decode(msg.data))

        subscription = await self.bus.nc.subscribe(inbox, cb=on_message)
        try:
            await self.bus.flush()
            reporting = msgspec.structs.replace(request, progress=inbox)
            return await self._call(method, namespace, reporting, node)
        finally:
            # Reports that came before the answer still reach the callback.
            await subscription.drain()  # type: ignore[no-untyped-call]

    async def _call(
        self, method: Unary[_Req, _Resp], namespace: str, request: _Req, node: str
    ) -> _Resp:
        return await self.bus.call(
            method, request, namespace=namespace, node=node, timeout=self.timeout
        )
