import pickle

import pytest

from flotilla.common import errdefs, headers

ALL = sorted(errdefs.KINDS)


def test_vocabulary_is_containerds_closed_set() -> None:
    assert set(ALL) == {
        "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition", "Conflict",
        "NotModified", "Aborted", "OutOfRange", "NotImplemented", "Internal", "Unavailable",
        "DataLoss", "Unauthenticated", "PermissionDenied", "ResourceExhausted", "Canceled",
        "DeadlineExceeded", "Unknown",
    }  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_each_class_round_trips_through_headers(name: str) -> None:
    error = errdefs.KINDS[name].cls(f"{name}: context\nwith a newline")
    back = headers.error_from(headers.error_headers(error))
    assert type(back) is type(error)
    assert str(back) == f"{name}: context with a newline"


@pytest.mark.parametrize(
    ("name", "grpc", "http"),
    [
        ("NotFound", 5, 404),
        ("AlreadyExists", 6, 409),
        ("InvalidArgument", 3, 400),
        ("FailedPrecondition", 9, 412),
        ("Unavailable", 14, 503),
        ("DeadlineExceeded", 4, 504),
        ("NotImplemented", 12, 501),
        ("OutOfRange", 11, 416),
        ("Unauthenticated", 16, 401),
        ("PermissionDenied", 7, 403),
    ],
)
def test_wire_codes(name: str, grpc: int, http: int) -> None:
    kind = errdefs.KINDS[name]
    assert (kind.grpc_code, kind.http_status) == (grpc, http)


@pytest.mark.parametrize("name", ALL)
def test_grpc_code_maps_back_to_a_class_with_that_code(name: str) -> None:
    kind = errdefs.KINDS[name]
    back = errdefs.from_grpc_code(kind.grpc_code, "m")
    assert errdefs.kind_of(back).grpc_code == kind.grpc_code


def test_subclass_keeps_its_parents_kind() -> None:
    class Locked(errdefs.Unavailable):
        pass

    assert errdefs.kind_of(Locked("x")).cls is errdefs.Unavailable


def test_foreign_errors_wrap_as_internal_without_their_text() -> None:
    wrapped = errdefs.wrap(KeyError("/secret/path"))
    assert isinstance(wrapped, errdefs.Internal)
    assert "secret" not in str(wrapped)
    assert errdefs.kind_of(ValueError()).cls is errdefs.Unknown


def test_unknown_class_name_from_a_peer_is_unknown() -> None:
    assert type(errdefs.from_name("Bogus", "m")) is errdefs.Unknown
    assert isinstance(
        headers.error_from({headers.ERROR: "boom", headers.ERROR_CODE: "500"}), errdefs.Unknown
    )
    assert isinstance(headers.error_from({headers.STATUS: "503"}), errdefs.Unavailable)
    assert headers.error_from({}) is None


def test_empty_message_falls_back_to_default_and_pickles() -> None:
    assert str(errdefs.NotFound()) == "not found"
    assert str(pickle.loads(pickle.dumps(errdefs.NotFound("x")))) == "x"
