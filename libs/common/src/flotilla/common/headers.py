"""NATS header names, and the two things every hop reads from them: namespace and errors."""

from __future__ import annotations

from typing import Final

from flotilla.common import errdefs

__all__ = [
    "CALLER",
    "ERROR",
    "ERROR_CLASS",
    "ERROR_CODE",
    "IDLE_MS",
    "NAMESPACE",
    "TIMEOUT_MS",
    "error_from",
    "error_headers",
]

NAMESPACE: Final = "Flotilla-Namespace"
# A unary call's deadline, relative to the request's arrival: the caller stops waiting then.
TIMEOUT_MS: Final = "Flotilla-Timeout-Ms"
# A stream's idle timeout: either side gives up after this long without hearing from the other
# (a stream may last as long as bytes keep flowing).
IDLE_MS: Final = "Flotilla-Idle-Ms"
# Which connection a request came from, so a service can bound what one caller holds.
CALLER: Final = "Flotilla-Caller"
# ADR-32 (NATS service API) error headers, plus the exact errdefs class in our own header.
ERROR: Final = "Nats-Service-Error"
ERROR_CODE: Final = "Nats-Service-Error-Code"
ERROR_CLASS: Final = "Flotilla-Error-Class"
# The NATS server's own status header: "503" means no responders.
STATUS: Final = "Status"

# NATS header values are single lines.
_MAX_MESSAGE: Final = 4000


def error_headers(error: errdefs.ErrdefsError) -> dict[str, str]:
    """Headers that carry ``error`` across NATS, exactly enough to rebuild it."""
    kind = errdefs.kind_of(error)
    message = " ".join(str(error).split())[:_MAX_MESSAGE]
    return {ERROR: message, ERROR_CODE: str(kind.nats_code), ERROR_CLASS: kind.cls.__name__}


def error_from(headers: dict[str, str] | None) -> errdefs.ErrdefsError | None:
    """The error a reply carries, or None for a successful reply."""
    if not headers:
        return None
    if ERROR_CLASS in headers:
        return errdefs.from_name(headers[ERROR_CLASS], headers.get(ERROR, ""))
    if ERROR in headers or ERROR_CODE in headers:
        # A peer that speaks ADR-32 but not our vocabulary.
        return errdefs.Unknown(f"{headers.get(ERROR_CODE, '')} {headers.get(ERROR, '')}".strip())
    if headers.get(STATUS) == "503":
        return errdefs.Unavailable("no responders")
    return None
