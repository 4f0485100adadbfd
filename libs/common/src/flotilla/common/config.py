"""One TOML file plus environment overrides, validated into frozen Structs.

Lookup: the file named by ``FLOTILLA_CONFIG``, else ``/etc/flotilla/config.toml`` if it exists,
else defaults. Then every ``FLOTILLA_<KEY>`` environment variable overrides a top-level key and
``FLOTILLA_<SECTION>__<KEY>`` a key in a section (``FLOTILLA_NATS__URLS=nats://a:4222,nats://b``).
Errors name the offending key: ``config: Expected `int`, got `str` - at `$.nats.port```.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from flotilla.common import errdefs

__all__ = [
    "DEFAULT_PATH",
    "Config",
    "ContentConfig",
    "MetricsConfig",
    "NatsConfig",
    "TelemetryConfig",
    "load",
]

DEFAULT_PATH: Final = Path("/etc/flotilla/config.toml")
_ENV_PREFIX: Final = "FLOTILLA_"


class NatsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach NATS.

    Attributes:
        urls: servers to connect to; empty means ``flotilla up`` starts an embedded server.
        credentials: path of a NATS ``.creds`` file, if the servers need one.
        port: client port of the embedded server (0: any free port).
        connect_timeout: seconds to keep retrying the first connection.
    """

    urls: tuple[str, ...] = ()
    credentials: str = ""
    port: int = 4222
    connect_timeout: float = 30.0


class TelemetryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where traces go: ``none`` or ``console`` (JSON per span, to ``trace_file`` or stderr)."""

    traces: Literal["none", "console"] = "none"
    trace_file: str = ""


class MetricsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where ``flotilla up`` serves the node's Prometheus metrics (empty: nowhere)."""

    listen: str = "127.0.0.1:9464"


class ContentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The content service.

    Attributes:
        session_lease: seconds an idle writer or reader session is kept before it is closed
            (its ingest kept, its ref unlocked), so a vanished caller never holds a ref.
    """

    session_lease: float = 30.0


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A node's configuration.

    Attributes:
        root: persistent data (content, snapshots, metadata).
        state: runtime state that does not survive a reboot (sockets, pids, ports).
        node_id: this node's name on the bus; defaults to the host name.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
    """

    root: str = "/var/lib/flotilla"
    state: str = "/run/flotilla"
    node_id: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    nats: NatsConfig = NatsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    metrics: MetricsConfig = MetricsConfig()
    content: ContentConfig = ContentConfig()

    @property
    def node(self) -> str:
        """The node id, the host name when unset."""
        return self.node_id or socket.gethostname().split(".")[0]

    @property
    def root_dir(self) -> Path:
        """``root`` as a path."""
        return Path(self.root)

    @property
    def state_dir(self) -> Path:
        """``state`` as a path."""
        return Path(self.state)


def _read_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise errdefs.NotFound(f"config file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise errdefs.InvalidArgument(f"config file {path}: {err}") from err


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    sections = {name for name, field in _FIELDS.items() if field}
    for name, value in environ.items():
        if not name.startswith(_ENV_PREFIX) or name == _ENV_PREFIX + "CONFIG":
            continue
        key = name[len(_ENV_PREFIX) :].lower()
        section, _, sub = key.partition("__")
        if sub and section in sections:
            raw.setdefault(section, {})[sub] = _env_value(_FIELDS[section][sub], value)
        elif not sub and key in _FIELDS:
            raw[key] = value
    return raw


def _env_value(kind: str, value: str) -> Any:
    # Tuples come as comma-separated lists; msgspec converts strings to numbers in lax mode.
    return [v.strip() for v in value.split(",") if v.strip()] if kind == "list" else value


_FIELDS: Final[dict[str, dict[str, str]]] = {
    "root": {},
    "state": {},
    "node_id": {},
    "log_level": {},
    "nats": {"urls": "list", "credentials": "", "port": "", "connect_timeout": ""},
    "telemetry": {"traces": "", "trace_file": ""},
    "metrics": {"listen": ""},
    "content": {"session_lease": ""},
}


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load the configuration; invalid config is InvalidArgument naming the key.

    Args:
        path: the TOML file; default ``$FLOTILLA_CONFIG`` or ``/etc/flotilla/config.toml``.
        environ: the environment to read overrides from (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get(_ENV_PREFIX + "CONFIG"):
        path = Path(environ[_ENV_PREFIX + "CONFIG"])
    if path is None and DEFAULT_PATH.exists():
        path = DEFAULT_PATH
    raw = _apply_env(_read_file(path), environ)
    try:
        return msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as err:
        raise errdefs.InvalidArgument(f"config: {err}") from err
