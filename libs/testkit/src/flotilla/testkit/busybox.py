"""The busybox root filesystem: Debian's static busybox plus the usual applet links."""

from __future__ import annotations

from pathlib import Path

from flotilla.testkit import tarlayer as t

__all__ = ["APPLETS", "DEFAULT_BUSYBOX", "PATH_ENV", "busybox_rootfs"]

DEFAULT_BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# A fixed list, not ``busybox --list``: the layer must not change with the host's build.
APPLETS = (
    "[", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df",
    "dirname", "du", "echo", "env", "expr", "false", "find", "free", "grep", "gunzip",
    "gzip", "head", "hostname", "id", "kill", "ln", "ls", "md5sum", "mkdir", "mktemp",
    "mount", "mv", "nproc", "printf", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "seq",
    "sh", "sha256sum", "sleep", "sort", "stat", "sync", "tail", "tar", "tee", "test",
    "timeout", "top", "touch", "tr", "true", "umount", "uname", "uniq", "uptime", "vi",
    "wc", "wget", "which", "whoami", "xargs", "yes",
)  # fmt: skip

_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def busybox_rootfs(busybox: Path = DEFAULT_BUSYBOX) -> list[t.Entry]:
    """The entries of the busybox layer, with ``busybox``'s bytes at ``/bin/busybox``."""
    dirs = ["bin", "dev", "etc", "home", "proc", "sys", "usr/bin", "usr/local/bin", "var"]
    entries = [t.directory(path) for path in dirs]
    entries += [
        t.directory("root", 0o700),
        t.directory("tmp", 0o1777),
        t.file("bin/busybox", busybox.read_bytes(), 0o755),
        t.file("etc/passwd", _PASSWD),
        t.file("etc/group", _GROUP),
        t.file("etc/hostname", b"flotilla\n"),
    ]
    entries += [t.symlink(f"bin/{applet}", "busybox") for applet in APPLETS]
    return entries
