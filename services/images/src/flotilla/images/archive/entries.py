"""An image tarball's entries, read safely: names stay inside the archive, links resolve by name.

:func:`scan` reads the archive once (in a worker thread) and keeps a :class:`Catalog`: the
regular files by their cleaned names, the links and what they name, and the small JSON
documents (``oci-layout``, ``index.json``, ``manifest.json``, and every other file of at most
:data:`~flotilla.images.oci.MAX_DOCUMENT` bytes that opens with ``{``: manifests, indexes and
configs). So the importer sees the whole image before it writes a byte. Layers are read later,
in archive order, through :meth:`Catalog.open`.

Nothing is extracted and no link is followed on disk: a link only names another entry, and a
blob is read from a regular-file entry. An entry whose name or link target leaves the archive's
root, a device or fifo, an entry named twice, and a truncated archive are InvalidArgument
naming the entry. :func:`tarfile.data_filter` checks every entry as well, behind these checks.
"""

from __future__ import annotations

import lzma
import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from flotilla.common.errdefs import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from flotilla.images.oci import MAX_DOCUMENT

__all__ = ["CONTROL", "CORRUPT", "MAX_DOCUMENTS", "Catalog", "clean_name", "scan"]

CONTROL: Final = frozenset({"oci-layout", "index.json", "manifest.json"})
"""The files that say what an archive is; always kept in memory."""

MAX_DOCUMENTS: Final = 256 << 20
"""How many bytes of JSON documents one archive may hold (they are kept in memory)."""

_BLOCK: Final = tarfile.BLOCKSIZE
_END: Final = b"\0" * (2 * _BLOCK)
_HOPS: Final = 16
_PEEK: Final = 64
# Where tarfile's data filter believes the archive is extracted: only its lexical checks count.
_ROOT: Final = "/nonexistent/archive"
CORRUPT: Final = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)
"""What reading a broken archive raises (gzip's BadGzipFile and bz2's errors are OSErrors)."""


@dataclass
class Catalog:
    """What an archive holds, and the open archive to read its files from.

    Attributes:
        path: the archive on disk.
        files: regular files by cleaned name, in archive order.
        links: symbolic and hard links by cleaned name, to the cleaned name they point at.
        docs: the small JSON documents by cleaned name.
    """

    path: Path
    tar: tarfile.TarFile
    files: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    docs: dict[str, bytes] = field(default_factory=dict)

    def find(self, name: str) -> tuple[str, tarfile.TarInfo] | None:
        """The regular file ``name`` stands for (following links by name), or None."""
        for _ in range(_HOPS):
            found = self.files.get(name)
            if found is not None:
                return name, found
            if name not in self.links:
                return None
            name = self.links[name]
        raise InvalidArgument(f"{self.path}: tar entry {name!r}: too many levels of links")

    def resolve(self, name: str, what: str) -> tuple[str, tarfile.TarInfo]:
        """As :meth:`find`, but a missing file is NotFound naming ``what``."""
        try:
            found = self.find(clean_name(name))
        except InvalidArgument as err:
            raise InvalidArgument(f"{self.path}: {what}: {err}") from None
        if found is None:
            raise NotFound(f"{self.path}: {what} {name!r} is not in the archive")
        return found

    def open(self, member: tarfile.TarInfo) -> IO[bytes]:
        """A reader of ``member``'s bytes (blocking; call from a worker thread)."""
        reader = self.tar.extractfile(member)
        if reader is None:  # only regular files are catalogued
            raise InvalidArgument(f"{self.path}: tar entry {member.name!r} is not a file")
        return reader

    def close(self) -> None:
        """Close the archive (blocking)."""
        self.tar.close()


def clean_name(raw: str) -> str:
    """``raw`` as a name relative to the archive's root.

    Raises:
        InvalidArgument: if ``raw`` is absolute or leaves the root.
    """
    if raw.startswith("/"):
        raise InvalidArgument(f"tar entry {raw!r}: absolute path")
    name = posixpath.normpath(raw)
    if name == ".." or name.startswith("../") or "\0" in name:
        raise InvalidArgument(f"tar entry {raw!r}: leaves the archive's root")
    return name


def scan(path: Path) -> Catalog:
    """Read ``path`` (a tar, plain or gzip-compressed) into a :class:`Catalog`; blocking.

    Raises:
        NotFound: if there is no file at ``path``.
        InvalidArgument: not a tar archive, truncated or corrupt, or an unsafe entry.
        ResourceExhausted: more than :data:`MAX_DOCUMENTS` of JSON documents.
    """
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - the catalog owns it
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except PermissionError:
        raise PermissionDenied(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{path}: a directory, not a tar archive") from None
    except CORRUPT as err:
        raise InvalidArgument(f"{path}: not a tar archive (plain or gzip): {err}") from None
    catalog = Catalog(path, tar)
    try:
        _read_entries(catalog)
    except BaseException:
        tar.close()
        raise
    return catalog


def _read_entries(catalog: Catalog) -> None:
    seen: set[str] = set()
    kept = 0
    last: tarfile.TarInfo | None = None
    try:
        for member in catalog.tar:
            last = member
            name = _check(catalog.path, member)
            if name in seen and not member.isdir():
                raise InvalidArgument(f"{catalog.path}: tar entry {name!r} appears twice")
            seen.add(name)
            if member.isreg():
                catalog.files[name] = member
                kept += _keep_document(catalog, name, member, kept)
            elif member.issym() or member.islnk():
                catalog.links[name] = _link_target(catalog.path, name, member)
            _data_filter(catalog.path, member)
        _check_complete(catalog, last)
    except CORRUPT as err:
        where = f" after tar entry {last.name!r}" if last else ""
        raise InvalidArgument(f"{catalog.path}: truncated or corrupt{where}: {err}") from None


def _check(path: Path, member: tarfile.TarInfo) -> str:
    try:
        name = clean_name(member.name)
    except InvalidArgument as err:
        raise InvalidArgument(f"{path}: {err}") from None
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise InvalidArgument(f"{path}: tar entry {member.name!r}: not a file, directory or link")
    return name


def _data_filter(path: Path, member: tarfile.TarInfo) -> None:
    """The ``data`` filter of tarfile, a second gate behind the checks above."""
    try:
        tarfile.data_filter(member, _ROOT)
    except tarfile.FilterError as err:
        raise InvalidArgument(f"{path}: tar entry {member.name!r}: {err}") from None


def _link_target(path: Path, name: str, member: tarfile.TarInfo) -> str:
    """The cleaned name a link points at: relative to its directory, or (hard) to the root."""
    target = member.linkname
    if target.startswith("/"):
        raise InvalidArgument(f"{path}: tar entry {name!r}: link to absolute path {target!r}")
    joined = posixpath.join(posixpath.dirname(name), target) if member.issym() else target
    try:
        return clean_name(joined)
    except InvalidArgument:
        raise InvalidArgument(
            f"{path}: tar entry {name!r}: link to {target!r} leaves the archive's root"
        ) from None


def _keep_document(catalog: Catalog, name: str, member: tarfile.TarInfo, kept: int) -> int:
    """Keep ``member``'s bytes if it is a small JSON document; returns how many were kept."""
    if member.size > MAX_DOCUMENT:
        if name in CONTROL:
            raise InvalidArgument(
                f"{catalog.path}: {name}: {member.size} bytes, more than {MAX_DOCUMENT}"
            )
        return 0
    reader = catalog.open(member)
    head = reader.read(_PEEK)
    if name not in CONTROL and not head.lstrip().startswith(b"{"):
        return 0
    if kept + member.size > MAX_DOCUMENTS:
        raise ResourceExhausted(
            f"{catalog.path}: more than {MAX_DOCUMENTS} bytes of JSON documents"
        )
    catalog.docs[name] = head + reader.read()
    if len(catalog.docs[name]) != member.size:
        raise tarfile.ReadError("unexpected end of data")
    return member.size


def _check_complete(catalog: Catalog, last: tarfile.TarInfo | None) -> None:
    """The archive holds every byte its last entry claims, then the end-of-archive marker.

    tarfile stops quietly where a header is cut off and reads only what it is asked for, so
    an archive cut short must be caught here. A compressed stream is read to its end, which
    also checks its trailer.
    """
    if last is None:
        raise InvalidArgument(f"{catalog.path}: an empty tar archive")
    end = last.offset_data
    if last.isreg():
        end += -(-last.size // _BLOCK) * _BLOCK
    stream = catalog.tar.fileobj
    assert stream is not None  # an open archive has its stream
    stream.seek(end)
    if stream.read(len(_END)) != _END:
        raise InvalidArgument(
            f"{catalog.path}: truncated or corrupt: no end-of-archive marker after "
            f"tar entry {last.name!r}"
        )
    while stream.read(1 << 20):
        pass
