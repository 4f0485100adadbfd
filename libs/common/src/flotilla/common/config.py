"""One TOML file plus environment overrides, validated into frozen Structs.

Lookup: the file named by ``FLOTILLA_CONFIG``, else ``/etc/flotilla/config.toml`` if it exists,
else defaults. Then every ``FLOTILLA_<KEY>`` environment variable overrides a top-level key and
``FLOTILLA_<SECTION>__<KEY>`` a key in a section (``FLOTILLA_NATS__URLS=nats://a:4222,nats://b``;
sequences are comma-separated). Which variables exist follows from the Structs themselves.

The frame's own sections (``nats``, ``telemetry``, ``metrics``, ``bus``) are fields of
:class:`Config`. Each service declares its own section next to its code, as a :class:`Section`
subclass, and reads it with :meth:`Config.section`::

    class ContentConfig(Section, frozen=True):
        session_lease: float = 30.0

    lease = config.section("content", ContentConfig).session_lease

Errors name the offending key: ``config: Expected `int`, got `str` - at `$.nats.port```.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import msgspec

from flotilla.common import errdefs

__all__ = [
    "DEFAULT_PATH",
    "BusConfig",
    "Config",
    "MetricsConfig",
    "NatsConfig",
    "Section",
    "TelemetryConfig",
    "load",
]

DEFAULT_PATH: Final = Path("/etc/flotilla/config.toml")
_ENV_PREFIX: Final = "FLOTILLA_"
_SEQUENCES: Final = (
    msgspec.inspect.VarTupleType,
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
)

S = TypeVar("S", bound="Section")


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every configuration section: frozen, keyword-only, unknown keys refused."""


class NatsConfig(Section, frozen=True):
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


class TelemetryConfig(Section, frozen=True):
    """Where traces go: ``none`` or ``console`` (JSON per span, to ``trace_file`` or stderr)."""

    traces: Literal["none", "console"] = "none"
    trace_file: str = ""


class MetricsConfig(Section, frozen=True):
    """Where ``flotilla up`` serves the node's Prometheus metrics (empty: nowhere)."""

    listen: str = "127.0.0.1:9464"


class BusConfig(Section, frozen=True):
    """Bounds every service's endpoints keep.

    Attributes:
        max_inflight: requests one endpoint runs at once (streams included); past it, callers
            get ResourceExhausted at once instead of a queue that grows without bound.
    """

    max_inflight: int = 1024


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A node's configuration.

    Attributes:
        root: persistent data (content, snapshots, metadata).
        state: runtime state that does not survive a reboot (sockets, pids, ports).
        node_id: this node's name on the bus; defaults to the host name.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        sections: every other table of the file (and its ``FLOTILLA_<SECTION>__*`` variables),
            as given: each service reads its own with :meth:`section`.
    """

    root: str = "/var/lib/flotilla"
    state: str = "/run/flotilla"
    node_id: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    nats: NatsConfig = NatsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    metrics: MetricsConfig = MetricsConfig()
    bus: BusConfig = BusConfig()
    sections: dict[str, dict[str, Any]] = {}

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

    def section(self, name: str, kind: type[S]) -> S:
        """The ``[name]`` section as ``kind`` (its defaults where absent).

        Raises:
            InvalidArgument: naming the key, if the section does not fit ``kind``.
        """
        raw = _split_sequences(self.sections.get(name, {}), kind)
        try:
            return msgspec.convert(raw, kind, strict=False)
        except msgspec.ValidationError as err:
            raise errdefs.InvalidArgument(f"config: {_at(err, name)}") from err


def _at(err: msgspec.ValidationError, name: str) -> str:
    """Msgspec's message with the path rooted at the section (``$.content.x``)."""
    return str(err).replace("`$", f"`$.{name}")


def _fields(kind: type[msgspec.Struct]) -> dict[str, msgspec.inspect.Type]:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.name: field.type for field in info.fields}


def _split_sequences(raw: Mapping[str, Any], kind: type[msgspec.Struct]) -> dict[str, Any]:
    """Comma-separated strings (from the environment) as lists where ``kind`` wants a sequence."""
    types = _fields(kind)
    return {
        key: [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, str) and isinstance(types.get(key), _SEQUENCES)
        else value
        for key, value in raw.items()
    }


_TOP: Final = _fields(Config)
_CORE_SECTIONS: Final = {
    name: type_.cls for name, type_ in _TOP.items() if isinstance(type_, msgspec.inspect.StructType)
}


def _read_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise errdefs.NotFound(f"config file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise errdefs.InvalidArgument(f"config file {path}: {err}") from err


def _gather_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """Move every table that is not one of :class:`Config`'s own into ``sections``."""
    sections: dict[str, Any] = raw.setdefault("sections", {})
    for key in [k for k, v in raw.items() if k not in _TOP and isinstance(v, dict)]:
        sections[key] = raw.pop(key)
    return raw


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name, value in environ.items():
        if not name.startswith(_ENV_PREFIX) or name == _ENV_PREFIX + "CONFIG":
            continue
        key = name[len(_ENV_PREFIX) :].lower()
        section, _, sub = key.partition("__")
        if not sub:
            if key in _TOP and key not in _CORE_SECTIONS and key != "sections":
                raw[key] = value
        elif section in _CORE_SECTIONS:
            core = raw.setdefault(section, {})
            core.update(_split_sequences({sub: value}, _CORE_SECTIONS[section]))
        else:
            raw["sections"].setdefault(section, {})[sub] = value
    return raw


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
    raw = _apply_env(_gather_sections(_read_file(path)), environ)
    try:
        return msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as err:
        raise errdefs.InvalidArgument(f"config: {err}") from err
