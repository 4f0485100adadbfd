"""The upper layers of the ``large`` image; their sizes scale with one ``size`` parameter.

Many small files, big incompressible ones, links, a whiteout and an opaque directory.

Layers, on top of busybox (8 in all):

2. ``/usr/share/flotilla/small``: thousands of small text files
3. ``/data/big/random-0.bin``: 30% of ``size``, incompressible
4. ``/data/big/random-1.bin`` (25%), hard link ``random-1.link``, symlink ``current``
5. ``/data/mixed``: a half-compressible file (10%) and more small files; ``/data/doomed.txt``;
   ``/data/opaque/{keep-a,keep-b,sub/c}.txt``
6. whiteout of ``/data/doomed.txt``; ``/data/opaque`` made opaque, with ``fresh.txt``
7. ``/data/big/random-2.bin``: 25%, incompressible
8. ``/etc/flotilla/large.conf`` and a ``hello`` script with a ``hi`` symlink
"""

from __future__ import annotations

from flotilla.testkit import tarlayer as t
from flotilla.testkit.content import RandomBytes

__all__ = ["DEFAULT_LARGE_SIZE", "WHITED_OUT", "large_layers", "small_file_count"]

DEFAULT_LARGE_SIZE = 200 << 20
WHITED_OUT = "data/doomed.txt"
_SMALL_FILE_SPACING = 64 << 10  # one small file per 64 KiB of image size
_HELLO = b"#!/bin/sh\necho hello from flotilla\n"


def small_file_count(size: int) -> int:
    """How many small files layer 2 holds for an image of ``size`` bytes (at least 64)."""
    return max(64, size // _SMALL_FILE_SPACING)


def _text(index: int) -> bytes:
    """A small, compressible, distinct file body of 0.5 to 4 KiB."""
    line = f"file {index:06d}: the quick brown fox jumps over the lazy dog\n".encode()
    return line * (8 + index % 56)


def _small_files(root: str, count: int, per_dir: int = 250) -> list[t.Entry]:
    return [t.file(f"{root}/d{i // per_dir:03d}/f{i:06d}.txt", _text(i)) for i in range(count)]


def _random(path: str, size: int, fraction: float, zeros: float = 0.0) -> t.Entry:
    return t.file(path, RandomBytes(int(size * fraction), seed=path, zero_fraction=zeros))


def _layer_links(size: int) -> list[t.Entry]:
    return [
        _random("data/big/random-1.bin", size, 0.25),
        t.hardlink("data/big/random-1.link", "data/big/random-1.bin"),
        t.symlink("data/big/current", "random-1.bin"),
    ]


def _layer_mixed(size: int) -> list[t.Entry]:
    return [
        _random("data/mixed/half-zero.bin", size, 0.10, zeros=0.5),
        *_small_files("data/mixed/small", small_file_count(size) // 2),
        t.file(WHITED_OUT, b"this file is deleted by the next layer\n"),
        t.file("data/opaque/keep-a.txt", b"hidden by the opaque dir above\n"),
        t.file("data/opaque/keep-b.txt", b"hidden by the opaque dir above\n"),
        t.file("data/opaque/sub/c.txt", b"hidden by the opaque dir above\n"),
    ]


def _layer_deletions() -> list[t.Entry]:
    return [
        t.whiteout(WHITED_OUT),
        t.directory("data/opaque"),
        t.opaque("data/opaque"),
        t.file("data/opaque/fresh.txt", b"the only file left in /data/opaque\n"),
    ]


def _layer_config(size: int) -> list[t.Entry]:
    return [
        t.file("etc/flotilla/large.conf", f"size={size}\nlayers=8\n".encode()),
        t.file("usr/local/bin/hello", _HELLO, 0o755),
        t.symlink("usr/local/bin/hi", "hello"),
    ]


def large_layers(size: int = DEFAULT_LARGE_SIZE) -> list[list[t.Entry]]:
    """Layers 2 to 8 of the large image (layer 1 is busybox), about ``size`` bytes in all."""
    return [
        _small_files("usr/share/flotilla/small", small_file_count(size)),
        [_random("data/big/random-0.bin", size, 0.30)],
        _layer_links(size),
        _layer_mixed(size),
        _layer_deletions(),
        [_random("data/big/random-2.bin", size, 0.25)],
        _layer_config(size),
    ]
