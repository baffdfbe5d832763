"""Ping parameters (SPEC §3.1) validated into a ``PingRequest``."""

from __future__ import annotations

from typing import Any

import pytest

from rtbridge.domain.errors import InvalidInput, MissingCallerNumber, UnknownKey
from rtbridge.domain.ping import MAX_TAG_VALUE, MAX_TAGS, parse_key, parse_ping

KEY = "f38240dd-7f65-4e17-a4d7-2e09ccafad0e"


def refused(params: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_ping(params)
    assert info.value.status == 422
    return info.value.message


def test_named_params_and_tags() -> None:
    p = parse_ping(
        {
            "key": KEY,
            "caller_number": "+1 202-555-0102",
            "inbound_number": "8005551234",
            "publisher_id": " sub-7 ",
            "source_id": "src",
            "caller_zip": "90210",
            "caller_state": "CA",
        }
    )
    assert p.key == KEY
    assert p.caller_number == "+12025550102"
    assert p.inbound_number == "+18005551234"
    assert p.publisher_id == "sub-7"
    assert p.source_id == "src"
    assert dict(p.tags) == {"caller_zip": "90210", "caller_state": "CA"}


def test_named_params_are_never_tags() -> None:
    p = parse_ping(
        {
            "key": KEY,
            "caller_number": "2025550102",
            "inbound_number": "",
            "publisher_id": "x",
            "source_id": "y",
        }
    )
    assert dict(p.tags) == {}


def test_json_numbers_in_tags_are_printed() -> None:
    p = parse_ping({"key": KEY, "caller_zip": 90210, "score": 1.5})
    assert dict(p.tags) == {"caller_zip": "90210", "score": "1.5"}


def test_json_integer_caller_number() -> None:
    assert parse_ping({"key": KEY, "caller_number": 12025550102}).caller_number == "+12025550102"


def test_json_float_caller_number_refused() -> None:
    # str(12025550102.0) would gain a digit once its "." is dropped as a separator.
    assert refused({"key": KEY, "caller_number": 12025550102.0}) == (
        "caller_number: must be a string"
    )


def test_query_string_plus_as_space() -> None:
    assert parse_ping({"key": KEY, "caller_number": " 35924930101"}).caller_number == (
        "+35924930101"
    )


@pytest.mark.parametrize("value", [True, False, {"a": 1}, [1, 2], ["+12025550102"]])
@pytest.mark.parametrize("name", ["caller_number", "inbound_number", "publisher_id", "key"])
def test_non_scalar_values_refused_with_the_field(name: str, value: object) -> None:
    params: dict[str, Any] = {"key": KEY, name: value}
    assert refused(params) == f"{name}: must be a string"


@pytest.mark.parametrize("value", [True, None, {"a": 1}, [1]])
def test_non_scalar_tag_refused(value: object) -> None:
    assert refused({"key": KEY, "caller_state": value}) == "tag caller_state: must be a string"


@pytest.mark.parametrize("raw", ["abc", "12345", "0201234567"])
def test_bad_caller_number_names_the_field(raw: str) -> None:
    assert refused({"key": KEY, "caller_number": raw}).startswith("caller_number: not an E.164")


def test_bad_inbound_number_names_the_field() -> None:
    assert refused({"key": KEY, "inbound_number": "nope"}).startswith("inbound_number: ")


def test_very_long_caller_number_refused_cheaply() -> None:
    assert refused({"key": KEY, "caller_number": "1" * 5000}).startswith("caller_number: ")


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_caller_is_missing(empty: str) -> None:
    p = parse_ping({"key": KEY, "caller_number": empty})
    assert p.caller_number is None
    with pytest.raises(MissingCallerNumber) as info:
        p.require_caller(allow_missing=False)
    assert info.value.message == "FAILED must include caller_number (string)"
    assert str(info.value) == "FAILED must include caller_number (string)"
    assert info.value.status == 422
    p.require_caller(allow_missing=True)  # allowed: no error


def test_absent_caller_and_null_caller() -> None:
    for params in ({"key": KEY}, {"key": KEY, "caller_number": None}):
        p = parse_ping(params)
        assert p.caller_number is None
        with pytest.raises(MissingCallerNumber):
            p.require_caller(False)


def test_present_caller_passes_the_requirement() -> None:
    """What the requirement reads is the normalised number, there even when required."""
    p = parse_ping({"key": KEY, "caller_number": "2025550102"})
    assert p.caller_number == "+12025550102"
    assert p.require_caller(allow_missing=False) is None


@pytest.mark.parametrize("name", ["caller state", "tag!", "a" * 65, "", "é", "x=y"])
def test_bad_tag_names(name: str) -> None:
    message = refused({"key": KEY, name: "v"})
    assert message.startswith("tag ")
    assert "names are 1-64 of" in message
    assert len(message) < 200  # the name is cut, not echoed whole


def test_tag_name_limits_accepted() -> None:
    name = "a" * 64
    assert parse_ping({"key": KEY, name: "v", "x.y-z_1": "w"}).tags == {name: "v", "x.y-z_1": "w"}


def test_at_most_50_tags() -> None:
    ok = {"key": KEY, **{f"t{i}": "v" for i in range(MAX_TAGS)}}
    assert len(parse_ping(ok).tags) == MAX_TAGS
    too_many = {"key": KEY, **{f"t{i}": "v" for i in range(MAX_TAGS + 1)}}
    assert refused(too_many) == "tags: at most 50 extra parameters"


def test_long_tag_value() -> None:
    assert parse_ping({"key": KEY, "t": "v" * MAX_TAG_VALUE}).tags["t"] == "v" * MAX_TAG_VALUE
    assert refused({"key": KEY, "t": "v" * (MAX_TAG_VALUE + 1)}) == (
        "tag t: longer than 256 characters"
    )


def test_long_labels() -> None:
    assert refused({"key": KEY, "publisher_id": "p" * 129}) == (
        "publisher_id: longer than 128 characters"
    )
    assert refused({"key": KEY, "source_id": "s" * 129}).startswith("source_id: ")


@pytest.mark.parametrize("params", [{}, {"key": ""}, {"key": "   "}, {"key": None}])
def test_missing_key_is_unknown(params: dict[str, Any]) -> None:
    with pytest.raises(UnknownKey) as info:
        parse_key(params)
    assert info.value.status == 401
    with pytest.raises(UnknownKey):
        parse_ping({**params, "caller_number": "2025550102"})


def test_parse_key_strips() -> None:
    assert parse_key({"key": f"  {KEY} "}) == KEY


def test_key_too_long() -> None:
    assert refused({"key": "k" * 129}) == "key: longer than 128 characters"
