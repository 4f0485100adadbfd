"""Registry answers as errdefs errors, one line naming the registry and the object."""

from __future__ import annotations

import json

import pytest

from flotilla.common import errdefs
from flotilla.images.remotes.errors import registry_detail, status_error


def body(*errors: dict[str, str]) -> bytes:
    return json.dumps({"errors": list(errors)}).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (404, errdefs.NotFound),
        (401, errdefs.Unauthenticated),
        (403, errdefs.PermissionDenied),
        (429, errdefs.Unavailable),
        (500, errdefs.Unavailable),
        (503, errdefs.Unavailable),
        (416, errdefs.OutOfRange),
        (405, errdefs.NotImplemented),
        (400, errdefs.InvalidArgument),
    ],
)
def test_status_classes(status: int, cls: type[errdefs.ErrdefsError]) -> None:
    err = status_error(status, "r.io", "manifest app:1")
    assert type(err) is cls
    assert str(err).startswith("registry r.io: manifest app:1")


def test_messages_carry_registry_codes() -> None:
    err = status_error(
        404, "127.0.0.1:5000", "manifest busybox:nope", body({"code": "MANIFEST_UNKNOWN"})
    )
    assert str(err) == (
        "registry 127.0.0.1:5000: manifest busybox:nope not found (MANIFEST_UNKNOWN)"
    )
    err = status_error(
        400, "r.io", "manifest app:1", body({"code": "BLOB_UNKNOWN", "message": "blob\nunknown"})
    )
    assert str(err) == ("registry r.io: manifest app:1: answered 400 (BLOB_UNKNOWN: blob unknown)")


def test_detail_of_odd_bodies() -> None:
    assert registry_detail(b"") == ""
    assert registry_detail(b"<html>") == ""
    assert registry_detail(b'{"errors": "x"}') == ""
    assert len(registry_detail(body({"code": "X", "message": "m" * 1000}))) == 200
