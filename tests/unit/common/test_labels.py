from __future__ import annotations

import pytest

from flotilla.common import labels
from flotilla.common.errdefs import InvalidArgument


def test_validate_drops_empty_values() -> None:
    assert labels.validate({"a": "1", "b": ""}) == {"a": "1"}
    assert labels.validate(None) == {}


def test_validate_limits_key_and_value_size() -> None:
    assert labels.validate({"k": "v" * 4095}) == {"k": "v" * 4095}
    with pytest.raises(InvalidArgument, match="4097 bytes"):
        labels.validate({"k": "v" * 4096})
    with pytest.raises(InvalidArgument, match="4097 bytes"):
        labels.validate({"k": "é" * 2048})  # bytes, not characters
    with pytest.raises(InvalidArgument, match="empty"):
        labels.validate({"": "v"})


@pytest.mark.parametrize(
    ("fieldpaths", "expected"),
    [
        ((), {"b": "3", "c": "4"}),
        (("labels",), {"b": "3", "c": "4"}),
        (("labels.b",), {"a": "1", "b": "3"}),
        (("labels.a",), {"b": "2"}),
        (("labels.c", "labels.a"), {"b": "2", "c": "4"}),
        (("labels", "labels.a"), {"b": "3", "c": "4"}),
        (("labels.containerd.io/gc.root",), {"a": "1", "b": "2"}),
    ],
)
def test_updated(fieldpaths: tuple[str, ...], expected: dict[str, str]) -> None:
    current = {"a": "1", "b": "2"}
    assert labels.updated(current, {"b": "3", "c": "4"}, fieldpaths) == expected


@pytest.mark.parametrize("path", ["size", "digest", "labels.", "label.a", "created_at"])
def test_updated_rejects_other_fields(path: str) -> None:
    with pytest.raises(InvalidArgument, match="cannot update"):
        labels.updated({}, {}, [path])


def test_updated_names_the_record() -> None:
    with pytest.raises(InvalidArgument, match="cannot update 'target' field on image"):
        labels.updated({}, {}, ["target"], record="image")


def test_apply_path_serves_records_with_more_fields() -> None:
    assert labels.is_label_path("labels.a")
    assert not labels.is_label_path("target")
    assert labels.apply_path({"a": "1"}, {"b": "2"}, "labels.b") == {"a": "1", "b": "2"}
