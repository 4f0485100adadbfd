"""Small lifecycle helpers shared by cores, adapters and proxies."""

from __future__ import annotations

from typing import Protocol, Self

__all__ = ["AsyncClosable", "AsyncClosing"]


class AsyncClosing:
    """Mixin: ``async with thing:`` closes ``thing`` on the way out.

    Subclasses define ``async def close()``; closing twice must be harmless.
    """

    async def close(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncClosable(Protocol):
    """What :class:`AsyncClosing` provides, as a port: ``close()`` and ``async with``."""

    async def close(self) -> None:
        """Release what the object holds; closing twice is harmless."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
