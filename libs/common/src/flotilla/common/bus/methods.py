"""Typed method descriptors, shared by a service's endpoints and its proxy.

A service's ``api.py`` declares each method once::

    INFO = Method("content", "info", InfoRequest, Info)

The server registers a handler for it; the proxy calls it. Encoders and decoders are built once,
when the descriptor is created, never per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from flotilla.common import errdefs
from flotilla.common.subjects import method_subject

__all__ = ["Empty", "Method", "decode", "encode"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_encoder = msgspec.msgpack.Encoder()


class Empty(msgspec.Struct, frozen=True):
    """A request or response with no fields."""


def encode(value: Any) -> bytes:
    """msgpack-encode a Struct (or any msgspec-supported value)."""
    return _encoder.encode(value)


def decode(decoder: msgspec.msgpack.Decoder[Req], data: bytes, what: str) -> Req:
    """Decode ``data``; anything malformed is InvalidArgument naming ``what`` and the problem."""
    try:
        return decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise errdefs.InvalidArgument(f"malformed {what}: {err}") from err


@dataclass(frozen=True, eq=False)
class Method(Generic[Req, Resp]):
    """One endpoint of one service: its subject and the types that travel on it.

    Attributes:
        service: the service name (a subject token), e.g. ``content``.
        name: the method name (a subject token), e.g. ``info``.
        request: the msgspec type of the request.
        response: the msgspec type of the (final) response.
        node_local: served per node on ``flotilla.v1.node.<node>.<service>.<name>``.
    """

    service: str
    name: str
    request: type[Req]
    response: type[Resp]
    node_local: bool = False
    request_decoder: msgspec.msgpack.Decoder[Req] = field(init=False, repr=False)
    response_decoder: msgspec.msgpack.Decoder[Resp] = field(init=False, repr=False)
    _cluster_subject: str = field(init=False, repr=False)
    _node_subjects: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cluster_subject", method_subject(self.service, self.name))
        object.__setattr__(self, "_node_subjects", {})
        object.__setattr__(self, "request_decoder", msgspec.msgpack.Decoder(self.request))
        object.__setattr__(self, "response_decoder", msgspec.msgpack.Decoder(self.response))

    @property
    def span_name(self) -> str:
        """``<service>.<method>``, the name of this method's spans."""
        return f"{self.service}.{self.name}"

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
        return decode(self.request_decoder, data, f"{self.service}.{self.name} request")

    def decode_response(self, data: bytes) -> Resp:
        """Decode a response body."""
        return decode(self.response_decoder, data, f"{self.service}.{self.name} response")
