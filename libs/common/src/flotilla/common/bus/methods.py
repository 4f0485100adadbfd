"""Typed method descriptors, shared by a service's endpoints and its proxy.

A service's ``api.py`` declares its wire types (subclasses of :class:`Wire`) and each method
once, through a :class:`ServiceApi`::

    API = ServiceApi("content", node_local=True)
    INFO = API.unary("info", DigestRequest, BlobInfo)       # request -> response
    LIST = API.items("list", ListRequest, BlobInfo)         # request -> stream of BlobInfo
    READ = API.source("read", ReadRequest)                  # request -> stream of bytes
    WRITE = API.sink("write", WriteRequest, IngestStatus)   # request + stream of bytes -> response

The server registers a handler for each (``ServiceHost.unary``, ``items``, ``source``, ``sink``);
the proxy calls them (``Bus.call``, ``items``, ``download``, ``upload``). The kind of a method is
part of its type, so a handler or a call of the wrong kind is a type error. Encoders and
decoders are built once, when the descriptor is created, never per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import GenericAlias
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

import msgspec

from flotilla.common import errdefs
from flotilla.common.subjects import method_subject

__all__ = [
    "Empty",
    "Items",
    "Method",
    "ServiceApi",
    "Sink",
    "Source",
    "Unary",
    "Wire",
    "decode",
    "encode",
]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Item = TypeVar("Item")

Kind = Literal["unary", "items", "source", "sink"]

_encoder = msgspec.msgpack.Encoder()


class Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every message on the bus: frozen and keyword-only.

    Unknown fields are ignored and new fields always get defaults, so either end may be newer
    (msgspec's schema evolution rules).
    """


class Empty(Wire, frozen=True):
    """A request or response with no fields."""


def encode(value: Any) -> bytes:
    """msgpack-encode a Struct (or any msgspec-supported value)."""
    return _encoder.encode(value)


def decode(decoder: msgspec.msgpack.Decoder[Req], data: bytes, what: str) -> Req:
    """Decode ``data``; anything malformed is InvalidArgument naming ``what`` and the problem."""
    try:
        return decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise _malformed(what, err) from err


def _malformed(what: str, err: Exception) -> errdefs.InvalidArgument:
    return errdefs.InvalidArgument(f"malformed {what}: {err}")


@dataclass(frozen=True, eq=False)
class Method(Generic[Req, Resp]):
    """One endpoint of one service: its subject and the types that travel on it.

    Use the kind-specific subclasses (:class:`Unary`, :class:`Items`, :class:`Source`,
    :class:`Sink`), declared through :class:`ServiceApi`.

    Attributes:
        service: the service name (a subject token), e.g. ``content``.
        name: the method name (a subject token), e.g. ``info``.
        request: the msgspec type of the request.
        response: the msgspec type of the response (of each item, for :class:`Items`).
        node_local: served per node on ``flotilla.v1.node.<node>.<service>.<name>``.
    """

    kind: ClassVar[Kind]
    service: str
    name: str
    request: type[Req]
    response: type[Resp]
    node_local: bool = False
    request_decoder: msgspec.msgpack.Decoder[Req] = field(init=False, repr=False)
    response_decoder: msgspec.msgpack.Decoder[Resp] = field(init=False, repr=False)
    _cluster_subject: str = field(init=False, repr=False)
    _node_subjects: dict[str, str] = field(init=False, repr=False)
    _span_name: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_span_name", f"{self.service}.{self.name}")
        object.__setattr__(self, "_cluster_subject", method_subject(self.service, self.name))
        object.__setattr__(self, "_node_subjects", {})
        object.__setattr__(self, "request_decoder", msgspec.msgpack.Decoder(self.request))
        object.__setattr__(self, "response_decoder", msgspec.msgpack.Decoder(self.response))

    @property
    def span_name(self) -> str:
        """``<service>.<method>``, the name of this method's spans."""
        return self._span_name

    def subject(self, node: str | None = None) -> str:
        """The subject to call; node-local methods need the node."""
        if not self.node_local:
            return self._cluster_subject
        if node is None:
            raise errdefs.InvalidArgument(f"{self.service}.{self.name} is node-local: name a node")
        subject = self._node_subjects.get(node)
        if subject is None:  # validated once per node, not per call
            subject = self._node_subjects[node] = method_subject(self.service, self.name, node)
        return subject

    def decode_request(self, data: bytes) -> Req:
        """Decode a request body."""
        try:
            return self.request_decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            raise _malformed(f"{self.service}.{self.name} request", err) from err

    def decode_response(self, data: bytes) -> Resp:
        """Decode a response body."""
        try:
            return self.response_decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            raise _malformed(f"{self.service}.{self.name} response", err) from err


@dataclass(frozen=True, eq=False)
class Unary(Method[Req, Resp]):
    """A request answered by one response."""

    kind: ClassVar[Kind] = "unary"


@dataclass(frozen=True, eq=False)
class Items(Method[Req, Item]):
    """A request answered by a stream of typed items (every List), sent in batches."""

    kind: ClassVar[Kind] = "items"
    batch_decoder: msgspec.msgpack.Decoder[list[Item]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        batch = cast(Any, GenericAlias(list, (self.response,)))
        object.__setattr__(self, "batch_decoder", msgspec.msgpack.Decoder(batch))

    def decode_batch(self, data: bytes) -> list[Item]:
        """Decode one batch of items."""
        return decode(self.batch_decoder, data, f"{self.service}.{self.name} items")


@dataclass(frozen=True, eq=False)
class Source(Method[Req, Empty]):
    """A request answered by a stream of bytes (server to caller)."""

    kind: ClassVar[Kind] = "source"


@dataclass(frozen=True, eq=False)
class Sink(Method[Req, Resp]):
    """A request followed by the caller's stream of bytes, answered by one response."""

    kind: ClassVar[Kind] = "sink"


class ServiceApi:
    """Declares one service's methods, each name once.

    A request type is never also a response type (an :class:`Empty` aside): requests and
    responses evolve separately.

    Args:
        service: the service name, a subject token.
        node_local: whether the service runs per node (every method node-local).
    """

    def __init__(self, service: str, *, node_local: bool = False) -> None:
        self.service = service
        self.node_local = node_local
        self.methods: dict[str, Method[Any, Any]] = {}
        self._requests: set[type] = set()
        self._responses: set[type] = set()

    def unary(
        self, name: str, request: type[Req], response: type[Resp], *, node_local: bool | None = None
    ) -> Unary[Req, Resp]:
        """Declare a request/response method (``node_local`` overrides the service's)."""
        return self._add(Unary(self.service, name, request, response, self._local(node_local)))

    def items(
        self, name: str, request: type[Req], item: type[Item], *, node_local: bool | None = None
    ) -> Items[Req, Item]:
        """Declare a method that answers with a stream of ``item``."""
        return self._add(Items(self.service, name, request, item, self._local(node_local)))

    def source(
        self, name: str, request: type[Req], *, node_local: bool | None = None
    ) -> Source[Req]:
        """Declare a method that answers with a stream of bytes."""
        return self._add(Source(self.service, name, request, Empty, self._local(node_local)))

    def sink(
        self, name: str, request: type[Req], response: type[Resp], *, node_local: bool | None = None
    ) -> Sink[Req, Resp]:
        """Declare a method that takes a stream of bytes after its request."""
        return self._add(Sink(self.service, name, request, response, self._local(node_local)))

    def _local(self, node_local: bool | None) -> bool:
        return self.node_local if node_local is None else node_local

    def _add(self, method: _M) -> _M:
        if method.name in self.methods:
            raise errdefs.AlreadyExists(f"{self.service}.{method.name} is declared twice")
        self._check_roles(method)
        self.methods[method.name] = method
        return method

    def _check_roles(self, method: Method[Any, Any]) -> None:
        request, response = method.request, method.response
        if request is not Empty and request in self._responses | {response}:
            raise errdefs.InvalidArgument(
                f"{self.service}.{method.name}: {request.__name__} is also a response type"
            )
        if response is not Empty and response in self._requests:
            raise errdefs.InvalidArgument(
                f"{self.service}.{method.name}: {response.__name__} is also a request type"
            )
        self._requests.add(request)
        self._responses.add(response)


_M = TypeVar("_M", bound=Method[Any, Any])
