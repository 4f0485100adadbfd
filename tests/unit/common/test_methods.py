"""Declaring a service's methods: kinds, names once, requests never reused as responses."""

import pytest

from flotilla.common import errdefs
from flotilla.common.bus import Empty, ServiceApi, Wire


class Ask(Wire, frozen=True):
    text: str = ""


class Answer(Wire, frozen=True):
    text: str = ""


def test_each_kind_is_declared_with_its_subject() -> None:
    api = ServiceApi("demo", node_local=True)
    ask = api.unary("ask", Ask, Answer)
    listing = api.items("list", Ask, Answer)
    cluster = api.unary("everywhere", Ask, Empty, node_local=False)
    assert (ask.kind, listing.kind, api.source("read", Ask).kind) == ("unary", "items", "source")
    assert api.sink("write", Ask, Answer).kind == "sink"
    assert ask.subject("n1") == "flotilla.v1.node.n1.demo.ask"
    assert cluster.subject() == "flotilla.v1.demo.everywhere"
    assert set(api.methods) == {"ask", "list", "everywhere", "read", "write"}


def test_a_name_is_declared_once() -> None:
    api = ServiceApi("demo")
    api.unary("ask", Ask, Answer)
    with pytest.raises(errdefs.AlreadyExists, match=r"demo\.ask"):
        api.unary("ask", Ask, Answer)


def test_a_request_type_is_never_a_response_type() -> None:
    api = ServiceApi("demo")
    with pytest.raises(errdefs.InvalidArgument, match="Ask is also a response type"):
        api.unary("echo", Ask, Ask)
    api.unary("ask", Ask, Answer)
    with pytest.raises(errdefs.InvalidArgument, match="Answer is also a response type"):
        api.unary("back", Answer, Empty)
    with pytest.raises(errdefs.InvalidArgument, match="Ask is also a request type"):
        api.items("list", Empty, Ask)
    api.unary("ping", Empty, Empty)  # Empty may be both


def test_item_batches_decode_as_lists() -> None:
    from flotilla.common.bus.methods import encode

    listing = ServiceApi("demo").items("list", Ask, Answer)
    batch = encode([Answer(text="a"), Answer(text="b")])
    assert listing.decode_batch(batch) == [Answer(text="a"), Answer(text="b")]
    with pytest.raises(errdefs.InvalidArgument, match=r"malformed demo\.list items"):
        listing.decode_batch(encode(Answer(text="not a list")))


async def test_coalesce_joins_small_chunks_and_passes_big_ones_uncopied() -> None:
    from collections.abc import AsyncIterator

    from flotilla.common.bus.stream import coalesce

    big = b"b" * 10

    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b"a", b"aa", b"aaa", b"aaaa", big, b"c"):
            yield piece

    joined = [chunk async for chunk in coalesce(chunks(), 4)]
    assert joined == [b"aaaaaa", b"aaaa", big, b"c"]
    assert joined[2] is big
