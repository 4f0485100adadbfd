from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from flotilla.common import filters
from flotilla.common.errdefs import InvalidArgument
from flotilla.common.filters import Operator, Selector
from flotilla.content.store import Info, Status, adapt_info, adapt_status

# containerd's pkg/filters test corpus, as flat field maps.
CORPUS: list[dict[str, str]] = [
    {"name": "foo", "labels.foo": "true"},
    {"name": "bar"},
    {"name": "foo", "labels.foo": "present", "labels.more complex label": "present"},
    {"name": "bar", "labels.bar": "true"},
    {"name": "fooer", 'labels.more complex label with \\ and "': "present"},
    {"name": "fooer", 'labels.more complex label with \\ and ".post': "present"},
    {"name": "baz", "other": "too complex, yo"},
    {"name": "bazo", "other": "abc"},
    {"name": "compound", "labels.foo": "omg_asdf.asdf-qwer"},
]


def adapt(item: dict[str, str]) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        return item.get(".".join(path))

    return field


def matching(*texts: str) -> list[int]:
    parsed = filters.parse_all(texts)
    return [index for index, item in enumerate(CORPUS) if parsed.match(adapt(item))]


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ((), list(range(9))),
        (("",), list(range(9))),
        (("name",), list(range(9))),
        (("labels.foo",), [0, 2, 8]),
        (("labels.foo,name",), [0, 2, 8]),
        (("labels.foo==true",), [0]),
        (("labels.foo==omg_asdf.asdf-qwer",), [8]),
        (("name==bar",), [1, 3]),
        (("name!=bar",), [0, 2, 4, 5, 6, 7, 8]),
        (("name==bar,labels.bar",), [3]),
        (('other=="too complex, yo"',), [6]),
        (("other~=[abc]+,name!=foo",), [6, 7]),
        (("other~=/[abc]+/,name!=foo",), [6, 7]),
        (("other~=/[abc]{1,2}/,name!=foo",), [6, 7]),
        (("other~=|^abc$|",), [7]),
        (("name==bar,labels.bar==true",), [3]),
        (("name==bar,labels.bar==wrong",), []),
        (('name==foo,labels."more complex label"',), [2]),
        ((r'labels."more complex label with \\ and \""==present',), [4]),
        ((r'labels."more complex label with \\ and \"".post==present',), [5]),
        (("name==foo", "name==bar"), [0, 1, 2, 3]),
        (("  name==foo",), [0, 2]),
        (("name == bar",), [1, 3]),
    ],
)
def test_containerd_corpus(texts: tuple[str, ...], expected: list[int]) -> None:
    assert matching(*texts) == expected


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("labels.|foo|==x", "[labels. >|||< foo|==x]", "invalid quote encountered"),
        ("labels.?foo==x", "[labels. >|?|< foo==x]", "expected field or quoted"),
        ("name==foo,", "[name==foo,]", "expected field or quoted"),
        ("labels.", "[labels.]", "expected field or quoted"),
        ("image~=,id?=?fbaq", "[image~= >|,|< id?=?fbaq]", "expected value or quoted"),
        ("labels.ns/key==value", "[labels.ns >|/|< key==value]", "quoted literal not terminated"),
        ("labels.key==/value", "[labels.key== >|/|< value]", "quoted literal not terminated"),
        ("name=bar", "[name >|=|< bar]", "unsupported operator '='"),
        ("name==a b", "[name==a >| |< b]", "unexpected input"),
        ("name foo", "[name  >|f|< oo]", "expected an operator"),
        ('name=="a\\qb"', '[name== >|"|< a\\qb"]', "illegal escape sequence"),
        ("name~=/(/", "[name~= >|/|< (/]", "invalid regular expression"),
        ("a\0", "[a >|\0|< ]", "unexpected null"),
    ],
)
def test_malformed_filters_name_the_position(text: str, where: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        filters.parse(text)
    assert where in str(caught.value)
    assert message in str(caught.value)
    before = where[1:].partition(" >|")[0] if ">|" in where else text
    assert f"at position {len(before)}:" in str(caught.value)


def test_parse_builds_selectors() -> None:
    parsed = filters.parse('labels."a.b"==x,size!=3,digest~=^sha256:,labels.gc')
    assert parsed == filters.All(
        (
            Selector(("labels", "a.b"), Operator.EQUAL, "x"),
            Selector(("size",), Operator.NOT_EQUAL, "3"),
            Selector(("digest",), Operator.MATCHES, "^sha256:", _pattern("^sha256:")),
            Selector(("labels", "gc"), Operator.PRESENT),
        )
    )


def test_escapes_in_quoted_strings() -> None:
    selector = _only(filters.parse(r'name=="tab\there\u00e9\x41\101\"q"'))
    assert selector.value == 'tab\there\u00e9AA"q'
    assert _only(filters.parse(r'name=="\xc3\xa9"')).value == "\u00e9"
    assert _only(filters.parse(r"name~=/a\/b/")).value == "a/b"
    assert _only(filters.parse(r"name~=|a\|b|")).value == "a|b"


def test_absent_fields() -> None:
    item: dict[str, str] = {}
    assert filters.parse("labels.x!=y").match(adapt(item))
    assert filters.parse("labels.x~=^$").match(adapt(item))
    assert not filters.parse("labels.x").match(adapt(item))
    assert not filters.parse('labels.x==""').match(adapt(item))


def test_info_adaptor() -> None:
    info = Info(digest="sha256:" + "a" * 64, size=42, labels={"a.b": "1", "c": "2"})
    field = adapt_info(info)
    assert field(("digest",)) == info.digest
    assert field(("size",)) == "42"
    assert field(("labels", "a", "b")) == "1"
    assert field(("labels", "a.b")) == "1"
    assert field(("labels", "missing")) is None
    assert field(("labels",)) is None
    assert field(("created_at",)) is None
    assert field(()) is None


def test_status_adaptor() -> None:
    field = adapt_status(Status(ref="layer", expected="sha256:" + "b" * 64))
    assert field(("ref",)) == "layer"
    assert field(("expected",)) == "sha256:" + "b" * 64
    assert adapt_status(Status(ref="x"))(("expected",)) is None
    assert field(("offset",)) is None


def _only(parsed: filters.Filter) -> Selector:
    assert isinstance(parsed, filters.All)
    (selector,) = parsed.selectors
    return selector


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)
