"""containerd's closed set of error classes, and their codes on every wire.

Every boundary (NATS headers, gRPC status, HTTP status, CLI exit message) speaks this one
vocabulary. Raise the most specific class with context, e.g. ``NotFound(f"content {digest}")``,
and chain the cause (``raise NotFound(...) from err``).

The table ``KINDS`` is the single place where a class meets its gRPC code, HTTP status and the
numeric code carried in the ``Nats-Service-Error-Code`` header.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Canceled",
    "Conflict",
    "DataLoss",
    "DeadlineExceeded",
    "ErrdefsError",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "KINDS",
    "Kind",
    "NotFound",
    "NotImplemented",
    "NotModified",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "from_grpc_code",
    "from_name",
    "from_os_error",
    "kind_of",
    "wrap",
]


class ErrdefsError(Exception):
    """Base of every Flotilla error that crosses a boundary.

    Attributes:
        message: human-readable context, e.g. ``"content sha256:ab..: not found"``.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message or KINDS[type(self).__name__].default_message

    def __reduce__(self) -> tuple[type[ErrdefsError], tuple[str]]:
        return (type(self), (self.message,))


class InvalidArgument(ErrdefsError):
    """The request is malformed or names something impossible."""


class NotFound(ErrdefsError):
    """The named object does not exist (in this namespace)."""


class AlreadyExists(ErrdefsError):
    """An object with that name or digest already exists."""


class FailedPrecondition(ErrdefsError):
    """The system is not in the state the operation needs (e.g. digest mismatch on commit)."""


class Conflict(ErrdefsError):
    """The operation conflicts with the current state of the object."""


class NotModified(ErrdefsError):
    """The object was not changed."""


class Aborted(ErrdefsError):
    """The operation was aborted, typically by a concurrency conflict."""


class OutOfRange(ErrdefsError):
    """An offset or size lies outside the valid range."""


class NotImplemented(ErrdefsError):  # noqa: A001 - containerd's name, shadowing is deliberate
    """The operation is not implemented."""


class Internal(ErrdefsError):
    """An internal invariant was broken; a bug."""


class Unavailable(ErrdefsError):
    """The service (or a locked resource) is unavailable; retrying may help."""


class DataLoss(ErrdefsError):
    """Unrecoverable data loss or corruption."""


class Unauthenticated(ErrdefsError):
    """The caller could not be authenticated."""


class PermissionDenied(ErrdefsError):
    """The caller may not perform this operation."""


class ResourceExhausted(ErrdefsError):
    """A quota or a resource ran out."""


class Canceled(ErrdefsError):
    """The operation was canceled by the caller."""


class DeadlineExceeded(ErrdefsError):
    """The deadline expired before the operation completed."""


class Unknown(ErrdefsError):
    """An error that fits no other class."""


@dataclass(frozen=True, slots=True)
class Kind:
    """How one error class is spelled on each wire."""

    cls: type[ErrdefsError]
    grpc_code: int
    http_status: int
    nats_code: int
    default_message: str


def _kinds(*rows: tuple[type[ErrdefsError], int, int, str]) -> dict[str, Kind]:
    # The NATS service API carries a numeric code; we use the HTTP status, as ADR-32 suggests.
    return {cls.__name__: Kind(cls, grpc, http, http, msg) for cls, grpc, http, msg in rows}


KINDS: Final[dict[str, Kind]] = _kinds(
    # class               gRPC code  HTTP  default message
    (Canceled, 1, 499, "context canceled"),
    (Unknown, 2, 500, "unknown"),
    (InvalidArgument, 3, 400, "invalid argument"),
    (DeadlineExceeded, 4, 504, "context deadline exceeded"),
    (NotFound, 5, 404, "not found"),
    (AlreadyExists, 6, 409, "already exists"),
    (PermissionDenied, 7, 403, "permission denied"),
    (ResourceExhausted, 8, 429, "resource exhausted"),
    (FailedPrecondition, 9, 412, "failed precondition"),
    (Conflict, 9, 409, "conflict"),
    (NotModified, 9, 304, "not modified"),
    (Aborted, 10, 409, "aborted"),
    (OutOfRange, 11, 416, "out of range"),
    (NotImplemented, 12, 501, "not implemented"),
    (Internal, 13, 500, "internal"),
    (Unavailable, 14, 503, "unavailable"),
    (DataLoss, 15, 500, "data loss"),
    (Unauthenticated, 16, 401, "unauthenticated"),
)

# gRPC code -> class, for codes that several classes share the first (most general) wins.
_BY_GRPC: Final[dict[int, type[ErrdefsError]]] = {}
for _kind in KINDS.values():
    _BY_GRPC.setdefault(_kind.grpc_code, _kind.cls)


def kind_of(error: BaseException) -> Kind:
    """The wire spelling of ``error``; anything outside the vocabulary is Unknown."""
    if isinstance(error, ErrdefsError):
        for cls in type(error).__mro__:
            kind = KINDS.get(cls.__name__)
            if kind is not None and kind.cls is cls:
                return kind
    return KINDS["Unknown"]


def from_name(name: str, message: str) -> ErrdefsError:
    """Rebuild the error a peer raised from its class name; unknown names become Unknown."""
    kind = KINDS.get(name)
    cls: type[ErrdefsError] = kind.cls if kind else Unknown
    return cls(message)


def from_grpc_code(code: int, message: str) -> ErrdefsError:
    """Rebuild an error from a gRPC status code (a lossy mapping: prefer the class name)."""
    return _BY_GRPC.get(code, Unknown)(message)


def wrap(error: BaseException) -> ErrdefsError:
    """``error`` itself if it is in the vocabulary, else an Internal naming its type only.

    Never exposes ``repr()`` of a foreign exception: its text may hold paths or secrets, and its
    class means nothing to a caller.
    """
    if isinstance(error, ErrdefsError):
        return error
    return Internal(f"internal error ({type(error).__name__})")


# errno -> (class, message) for the OS errors a caller can act on; the message is the errno's
# text, lower-cased as errdefs messages are.
_BY_ERRNO: Final[dict[int, tuple[type[ErrdefsError], str]]] = {
    errno.ENOSPC: (ResourceExhausted, "no space left on device"),
    errno.EDQUOT: (ResourceExhausted, "disk quota exceeded"),
    errno.EFBIG: (ResourceExhausted, "file too large"),
    errno.EMFILE: (ResourceExhausted, "too many open files"),
    errno.ENFILE: (ResourceExhausted, "too many open files in system"),
    errno.ENOMEM: (ResourceExhausted, "out of memory"),
    errno.EACCES: (PermissionDenied, "permission denied"),
    errno.EPERM: (PermissionDenied, "operation not permitted"),
    errno.EROFS: (FailedPrecondition, "read-only file system"),
    errno.ENOENT: (NotFound, "no such file or directory"),
    errno.EEXIST: (AlreadyExists, "file exists"),
}


def from_os_error(error: OSError, where: str) -> ErrdefsError:
    """The error class for ``error``'s errno, naming ``where`` (a path, a root, an object).

    E.g. ``ENOSPC`` becomes ``ResourceExhausted("no space left on device (/var/lib/x)")``.
    Errnos without a class of their own stay Internal, as :func:`wrap` makes them, but say
    what failed where. Raise the result ``from error`` to keep the cause for the logs.
    """
    cls, text = _BY_ERRNO.get(error.errno or 0, (Internal, ""))
    if not text:
        text = (error.strerror or "os error").lower()
    return cls(f"{text} ({where})")
