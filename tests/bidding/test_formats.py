"""Bid requests on the wire and what buyers' answers mean, per format: every hostile or
sloppy answer a bidder can give becomes a Bid or a NoBid that says why, never an exception."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from rtbridge.bidding.formats import (
    FORMATS,
    MAX_BID,
    MAX_BODY,
    MAX_EXPIRES_IN,
    Bid,
    BidRequest,
    NoBid,
    read_answer,
    request_body,
)

NOW = datetime(2026, 5, 5, 6, 0, 0, tzinfo=UTC)
REQ = BidRequest(
    reservation="0190d6c4-6d3c-7b7e-9a55-3f1f2e8a9b10",
    campaign="auto",
    publisher="pub-1",
    caller_number="+12025550101",
    inbound_number="+18339510260",
    tags={"zip": "10001", "state": "NY"},
    deadline_ms=250,
)
HIDDEN = BidRequest(**{**REQ.__dict__, "caller_number": None})


def rtb(answer: Any, status: int = 200) -> Bid | NoBid:
    return read_answer("rtbridge", status, orjson.dumps(answer), now=NOW)


def good(**fields: Any) -> dict[str, Any]:
    return {"bid": 12.5, "destination": "sip:queue@buyer.example.net", **fields}


# -- requests ----------------------------------------------------------------------------------


def test_rtbridge_request_is_the_issue_shape() -> None:
    assert orjson.loads(request_body("rtbridge", REQ)) == {
        "id": REQ.reservation,
        "campaign": "auto",
        "publisher": "pub-1",
        "caller_number": "+12025550101",
        "inbound_number": "+18339510260",
        "tags": {"zip": "10001", "state": "NY"},
        "deadline_ms": 250,
    }


def test_rtbridge_request_with_the_caller_hidden_says_null() -> None:
    assert orjson.loads(request_body("rtbridge", HIDDEN))["caller_number"] is None


def test_ringba_request_is_flat_with_the_caller_as_digits() -> None:
    assert orjson.loads(request_body("ringba", REQ)) == {
        "CID": "12025550101",
        "exposeCallerId": "yes",
        "sipOk": "yes",
        "zip": "10001",
        "state": "NY",
    }


def test_ringba_request_without_caller_has_no_cid_and_tags_cannot_forge_one() -> None:
    req = BidRequest(**{**HIDDEN.__dict__, "tags": {"CID": "15550000000", "exposeCallerId": "x"}})
    assert orjson.loads(request_body("ringba", req)) == {"sipOk": "yes"}


def test_retreaver_request_never_sends_our_inbound_number() -> None:
    tags = {"zip": "10001", "inbound_number": "+1999", "key": "forged", "publisher_id": "p"}
    req = BidRequest(**{**REQ.__dict__, "tags": tags})
    assert orjson.loads(request_body("retreaver", req)) == {
        "caller_number": "+12025550101",
        "zip": "10001",
    }
    assert orjson.loads(request_body("retreaver", HIDDEN)) == {"zip": "10001", "state": "NY"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_a_request_and_an_answer(fmt: str) -> None:
    assert isinstance(orjson.loads(request_body(fmt, REQ)), dict)
    assert read_answer(fmt, 204, b"", now=NOW) == NoBid("no-bid", "HTTP 204")


# -- HTTP statuses and bodies (the same for every format) ------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (204, NoBid("no-bid", "HTTP 204")),
        (205, NoBid("no-bid", "HTTP 205")),
        (202, NoBid("no-bid", "HTTP 202 (accepted, no bid)")),
        (206, NoBid("invalid", "HTTP 206")),
        (226, NoBid("invalid", "HTTP 226")),
        (301, NoBid("error", "HTTP 301")),
        (404, NoBid("error", "HTTP 404")),
        (429, NoBid("error", "HTTP 429")),
        (500, NoBid("error", "HTTP 500")),
        (503, NoBid("error", "HTTP 503")),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_statuses(fmt: str, status: int, expected: NoBid) -> None:
    assert read_answer(fmt, status, orjson.dumps(good()), now=NOW) == expected


@pytest.mark.parametrize("status", [200, 201, 203])
def test_statuses_that_carry_a_bid(status: int) -> None:
    assert isinstance(rtb(good(), status), Bid)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", NoBid("no-bid", "empty answer")),
        (b"  \r\n", NoBid("no-bid", "empty answer")),
        (b"<html>502 Bad Gateway</html>", NoBid("invalid", "not JSON")),
        (b'{"bid": 12.5', NoBid("invalid", "not JSON")),
        (b'{"bid": NaN}', NoBid("invalid", "not JSON")),
        (b'{"bid": Infinity}', NoBid("invalid", "not JSON")),
        (b'{"bid": 1e999}', NoBid("invalid", "not JSON")),
        (b"\xff\xfe{}", NoBid("invalid", "not JSON")),
        (b"[12.5]", NoBid("invalid", "not a JSON object")),
        (b'"12.5"', NoBid("invalid", "not a JSON object")),
        (b"12.5", NoBid("invalid", "not a JSON object")),
        (b"null", NoBid("invalid", "not a JSON object")),
        (b"[" * 100_000, NoBid("invalid", "answer over 64 KiB")),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_bodies_that_are_not_an_answer(fmt: str, body: bytes, expected: NoBid) -> None:
    assert read_answer(fmt, 200, body, now=NOW) == expected


def test_deep_nesting_within_the_size_cap_is_invalid_not_a_crash() -> None:
    assert rtb_raw(b"[" * 5000 + b"]" * 5000) == NoBid("invalid", "not JSON")
    nested = b'{"x": ' + b"[" * 500 + b"]" * 500 + b"}"
    assert rtb_raw(nested) == NoBid("no-bid", "no bid in the answer")


def test_an_integer_beyond_64_bits_is_just_too_big() -> None:
    answer = rtb_raw(b'{"bid": 123456789012345678901234567890, "destination": "+18005551234"}')
    assert answer == NoBid("invalid", f"bid above {MAX_BID:g}")


def rtb_raw(body: bytes) -> Bid | NoBid:
    return read_answer("rtbridge", 200, body, now=NOW)


def test_a_body_at_the_cap_is_read() -> None:
    padded = orjson.dumps(good(pad="x" * (MAX_BODY - len(orjson.dumps(good(pad=""))))))
    assert len(padded) == MAX_BODY and isinstance(rtb_raw(padded), Bid)
    assert rtb_raw(padded + b" ") == NoBid("invalid", "answer over 64 KiB")


def test_unknown_format_is_the_callers_bug() -> None:
    with pytest.raises(KeyError):
        read_answer("openrtb", 200, b"{}")


# -- rtbridge: amounts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bid", "amount"),
    [
        (12.5, 12.5),
        (20, 20.0),
        (0.01, 0.01),
        (12.345, 12.35),  # half up, on the decimal the bidder wrote (not 12.3449999...)
        (12.344, 12.34),
        (0.005, 0.01),
        ("12.50", 12.5),
        (" 7 ", 7.0),
        ("0.015", 0.02),
        (MAX_BID, MAX_BID),
        (str(int(MAX_BID)), MAX_BID),
    ],
)
def test_amounts(bid: Any, amount: float) -> None:
    answer = rtb(good(bid=bid))
    assert isinstance(answer, Bid) and answer.amount == amount


@pytest.mark.parametrize(
    ("bid", "reason"),
    [
        (0, "bid 0"),
        (0.0, "bid 0"),
        ("0", "bid 0"),
        ("0.00", "bid 0"),
        (0.004, "bid 0"),  # rounds to 0.00
        (None, "no bid in the answer"),
    ],
)
def test_zero_and_null_are_no_bid(bid: Any, reason: str) -> None:
    assert rtb(good(bid=bid)) == NoBid("no-bid", reason)


def test_no_bid_field_is_no_bid() -> None:
    assert rtb({}) == NoBid("no-bid", "no bid in the answer")
    assert rtb({"bid": 0}) == NoBid("no-bid", "bid 0")  # no destination needed


@pytest.mark.parametrize(
    ("bid", "reason"),
    [
        (-1, "negative bid"),
        (-0.01, "negative bid"),
        ("-5", "negative bid"),
        (MAX_BID + 0.01, f"bid above {MAX_BID:g}"),
        (1e30, f"bid above {MAX_BID:g}"),
        (True, "bid is not a number"),
        (False, "bid is not a number"),
        ("NaN", "bid is not a number"),
        ("Infinity", "bid is not a number"),
        ("1e3", "bid is not a number"),
        ("$12", "bid is not a number"),
        ("12,50", "bid is not a number"),
        ("+12", "bid is not a number"),
        ("", "bid is not a number"),
        ("1" * 40, "bid is not a number"),
        ([12.5], "bid is not a number"),
        ({"amount": 12.5}, "bid is not a number"),
    ],
)
def test_bad_amounts_are_invalid(bid: Any, reason: str) -> None:
    assert rtb(good(bid=bid)) == NoBid("invalid", reason)


# -- rtbridge: destinations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("sip:queue@buyer.example.net", "sip:queue@buyer.example.net"),
        ("sips:queue@buyer.example.net:5061", "sips:queue@buyer.example.net:5061"),
        ("sip:buyer.example.net", "sip:buyer.example.net"),
        ("sip:+18005551234@gw.example.net;transport=tcp", "sip:+18005551234@gw.example.net;transport=tcp"),
        ("sip:q@127.0.0.1:5070", "sip:q@127.0.0.1:5070"),
        ("sip:q@[2001:db8::1]:5060", "sip:q@[2001:db8::1]:5060"),
        ("SIP:Queue@Buyer.example.net", "sip:Queue@Buyer.example.net"),
        ("  sip:q@buyer.example.net  ", "sip:q@buyer.example.net"),
        ("+18005551234", "+18005551234"),
        ("18005551234", "+18005551234"),
        ("8005551234", "+18005551234"),
        ("+1 (800) 555-1234", "+18005551234"),
        ("+442071234567", "+442071234567"),
    ],
)  # fmt: skip
def test_destinations(destination: str, expected: str) -> None:
    answer = rtb(good(destination=destination))
    assert isinstance(answer, Bid) and answer.destination == expected


NOT_A_DESTINATION = "destination is not a SIP URI or E.164 number"


@pytest.mark.parametrize(
    ("destination", "reason"),
    [
        (None, "no destination"),
        ("", "no destination"),
        ("sip:", NOT_A_DESTINATION),
        ("sip:queue@", NOT_A_DESTINATION),
        ("sip:@buyer.example.net", NOT_A_DESTINATION),
        ("sip:queue@buyer example.net", NOT_A_DESTINATION),
        ("sip:queue@buyer.example.net\r\nX-Evil: 1", NOT_A_DESTINATION),
        ("sip:queue@buyer.example.net\x00", NOT_A_DESTINATION),
        ("sip:<queue@buyer.example.net>", NOT_A_DESTINATION),
        ('sip:"q"@buyer.example.net', NOT_A_DESTINATION),
        ("sip:q@-buyer.example.net", NOT_A_DESTINATION),
        ("sip:q@buyer.example.net:99999", "destination's port is out of range"),
        ("sip:q@buyer.example.net:0", "destination's port is out of range"),
        ("sip:q@" + "a" * 600, "destination over 512 characters"),
        ("tel:+18005551234", NOT_A_DESTINATION),
        ("http://buyer.example.net/", NOT_A_DESTINATION),
        ("queue@buyer.example.net", NOT_A_DESTINATION),
        ("+0123456789", NOT_A_DESTINATION),
        ("+1800", NOT_A_DESTINATION),
        ("1" * 20, NOT_A_DESTINATION),
        (18005551234, NOT_A_DESTINATION),
        (["sip:q@buyer.example.net"], NOT_A_DESTINATION),
    ],
)
def test_bad_destinations_are_invalid(destination: Any, reason: str) -> None:
    assert rtb(good(destination=destination)) == NoBid("invalid", reason)


def test_a_positive_bid_without_destination_is_invalid() -> None:
    assert rtb({"bid": 5}) == NoBid("invalid", "no destination")


# -- rtbridge: expiry and bid id ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        (None, None),
        (60, 60),
        (1, 1),
        (59.9, 59),
        ("90", 90),
        (MAX_EXPIRES_IN, MAX_EXPIRES_IN),
        (MAX_EXPIRES_IN + 1, MAX_EXPIRES_IN),  # cut, not refused: the key's TTL is shorter
        (10**12, MAX_EXPIRES_IN),
    ],
)
def test_expires_in(expires_in: Any, expected: int | None) -> None:
    answer = rtb(good(expires_in=expires_in))
    assert isinstance(answer, Bid) and answer.expires_in == expected


@pytest.mark.parametrize(
    ("expires_in", "reason"),
    [
        (0, "bid already expired"),
        (-5, "bid already expired"),
        (0.5, "bid already expired"),
        ("-5", "bid already expired"),
        (True, "expires_in is not a number of seconds"),
        ("soon", "expires_in is not a number of seconds"),
        ([60], "expires_in is not a number of seconds"),
    ],
)
def test_bad_expires_in_is_invalid(expires_in: Any, reason: str) -> None:
    assert rtb(good(expires_in=expires_in)) == NoBid("invalid", reason)


@pytest.mark.parametrize(
    ("bid_id", "expected"),
    [(None, None), ("", None), ("abc-123", "abc-123"), (42, "42"), ("x" * 128, "x" * 128)],
)
def test_bid_ids(bid_id: Any, expected: str | None) -> None:
    answer = rtb(good(bid_id=bid_id))
    assert isinstance(answer, Bid) and answer.bid_id == expected


@pytest.mark.parametrize(
    ("bid_id", "reason"),
    [
        ("x" * 129, "bid_id over 128 characters"),
        ("a\nb", "bid_id has control characters"),
        (True, "bid_id is not text"),
        (1.5, "bid_id is not text"),
        ({"id": 1}, "bid_id is not text"),
    ],
)
def test_bad_bid_ids_are_invalid(bid_id: Any, reason: str) -> None:
    assert rtb(good(bid_id=bid_id)) == NoBid("invalid", reason)


def test_a_full_rtbridge_bid() -> None:
    answer = rtb({"bid": 12.5, "destination": "+18005551234", "expires_in": 60, "bid_id": "b-7",
                  "extra": {"ignored": True}})  # fmt: skip
    assert answer == Bid(12.5, "+18005551234", 60, "b-7")


# -- ringba ------------------------------------------------------------------------------------


def ringba(answer: dict[str, Any]) -> Bid | NoBid:
    return read_answer("ringba", 200, orjson.dumps(answer), now=NOW)


RINGBA_WIN = {  # as integrators log Ringba's answer
    "bidId": "RTBe983e428edc946a3863bcc912b828927",
    "bidAmount": 4.2,
    "expireInSeconds": 39,
    "bidExpireDT": "8/12/2025 4:12:56 PM +00:00",
    "bidExpireEpoch": 1755015176448,
    "phoneNumber": "+17733408913",
    "phoneNumberNoPlus": "17733408913",
    "sipAddress": "RTBe983e428edc946a3863bcc912b828927@rtb.ringba.sip.telnyx.com",
    "warnings": [{"code": 230, "description": "Previous bid for this request not yet expired"}],
}


def test_ringba_bid_prefers_the_sip_address_with_a_scheme_added() -> None:
    assert ringba(RINGBA_WIN) == Bid(
        amount=4.2,
        destination="sip:RTBe983e428edc946a3863bcc912b828927@rtb.ringba.sip.telnyx.com",
        expires_in=39,
        bid_id="RTBe983e428edc946a3863bcc912b828927",
    )


@pytest.mark.parametrize(
    ("fields", "destination"),
    [
        ({"sipAddress": None}, "+17733408913"),
        ({"sipAddress": "", "phoneNumber": None}, "+17733408913"),  # phoneNumberNoPlus
        ({"sipAddress": "bad address@x"}, "+17733408913"),  # a bad SIP URI, a good number
        ({"sipAddress": "sip:q@ringba.example"}, "sip:q@ringba.example"),
        ({"sipAddress": "18005551234", "phoneNumber": None}, "+18005551234"),  # no @: a number
    ],
)
def test_ringba_destination_fallbacks(fields: dict[str, Any], destination: str) -> None:
    answer = ringba({**RINGBA_WIN, **fields})
    assert isinstance(answer, Bid) and answer.destination == destination


def test_ringba_without_any_destination_is_invalid() -> None:
    answer = ringba({"bidId": "x", "bidAmount": 5})
    assert answer == NoBid("invalid", "no destination")
    only_bad_sip = {"bidAmount": 5, "sipAddress": "a b@c"}
    assert ringba(only_bad_sip) == NoBid("invalid", NOT_A_DESTINATION)


def test_ringba_failed_bid_is_no_bid_with_its_reason() -> None:
    failed = {"bidId": "bdb74fe968224e55b941f02fa1cb23b0", "bidAmount": 0,
              "rejectReason": "Missing required fields"}  # fmt: skip
    assert ringba(failed) == NoBid("no-bid", "Missing required fields")
    assert ringba({"bidAmount": 0}) == NoBid("no-bid", "bidAmount 0")
    assert ringba({}) == NoBid("no-bid", "no bidAmount")


def test_ringba_reject_reason_is_made_safe() -> None:
    answer = ringba({"bidAmount": 0, "rejectReason": "bad\r\nX-Injected: 1" + "!" * 500})
    assert isinstance(answer, NoBid) and answer.outcome == "no-bid"
    assert "\n" not in answer.reason and len(answer.reason) <= 120


def test_ringba_expiry_from_the_epoch_when_seconds_are_missing() -> None:
    epoch_ms = (NOW + timedelta(seconds=45)).timestamp() * 1000
    answer = ringba({**RINGBA_WIN, "expireInSeconds": None, "bidExpireEpoch": epoch_ms})
    assert isinstance(answer, Bid) and answer.expires_in == 45
    past = ringba({**RINGBA_WIN, "expireInSeconds": None, "bidExpireEpoch": 1000})
    assert past == NoBid("invalid", "bid already expired")


def test_ringba_snake_case_spellings() -> None:
    answer = ringba({"bid_amount": "30.00", "bid_id": "b1", "expire_in_seconds": 95,
                     "phone_number": "(800) 555-1234"})  # fmt: skip
    assert answer == Bid(30.0, "+18005551234", 95, "b1")


@pytest.mark.parametrize(
    ("amount", "reason"),
    [(-3, "negative bid"), ("abc", "bid is not a number"), (True, "bid is not a number")],
)
def test_ringba_bad_amounts(amount: Any, reason: str) -> None:
    assert ringba({**RINGBA_WIN, "bidAmount": amount}) == NoBid("invalid", reason)


# -- retreaver ---------------------------------------------------------------------------------


def retreaver(answer: dict[str, Any]) -> Bid | NoBid:
    return read_answer("retreaver", 200, orjson.dumps(answer), now=NOW)


RESERVED = {
    "uuid": "64ce5820-a451-475b-be29-26a47ec338b1",
    "status": "reserved",
    "retreaver_payout": 90.0,
    "retreaver_seconds": 120,
    "inbound_number": "+35924930101",
    "expires_at": "2026-05-05T06:01:00.534Z",
}


def test_retreaver_reservation_is_a_bid() -> None:
    assert retreaver(RESERVED) == Bid(
        amount=90.0,
        destination="+35924930101",
        expires_in=60,
        bid_id="64ce5820-a451-475b-be29-26a47ec338b1",
        seconds=120,
    )


def test_retreaver_rtb_root_and_sip_address() -> None:
    wrapped = {"rtb": {**RESERVED, "sip_address": f"{RESERVED['uuid']}@sip.rtb.retreaver.com"}}
    answer = retreaver(wrapped)
    assert isinstance(answer, Bid)
    assert answer.destination == f"sip:{RESERVED['uuid']}@sip.rtb.retreaver.com"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"uuid": "u", "status": "no-target", "reason": "daily-cap-reached"},
         NoBid("no-bid", "no-target: daily-cap-reached")),
        ({"rtb": {"uuid": "u", "status": "no-target"}}, NoBid("no-bid", "no-target")),
        ({"status": "expired"}, NoBid("no-bid", "expired")),
        ({"error": "FAILED must include caller_number (string)"},
         NoBid("error", "FAILED must include caller_number (string)")),
        ({**RESERVED, "retreaver_payout": 0}, NoBid("no-bid", "retreaver_payout 0")),
        ({"status": "reserved"}, NoBid("no-bid", "no payout")),
        ({**RESERVED, "retreaver_payout": -1}, NoBid("invalid", "negative bid")),
        ({**RESERVED, "expires_at": "tomorrow"}, NoBid("invalid", "expires_at is not a time")),
        ({**RESERVED, "expires_at": "2026-05-05T06:01:00"},
         NoBid("invalid", "expires_at has no time zone")),
        ({**RESERVED, "expires_at": "2026-05-05T05:59:00Z"}, NoBid("invalid", "bid already expired")),
        ({**RESERVED, "inbound_number": None}, NoBid("invalid", "no destination")),
        ({**RESERVED, "retreaver_seconds": -1}, NoBid("invalid", "retreaver_seconds out of range")),
        ({**RESERVED, "retreaver_seconds": "2m"},
         NoBid("invalid", "retreaver_seconds is not a number of seconds")),
    ],
)  # fmt: skip
def test_retreaver_answers(answer: dict[str, Any], expected: NoBid) -> None:
    assert retreaver(answer) == expected


def test_retreaver_confirmed_and_statusless_payouts_are_bids() -> None:
    assert isinstance(retreaver({**RESERVED, "status": "confirmed"}), Bid)
    statusless = {k: v for k, v in RESERVED.items() if k != "status"}
    assert isinstance(retreaver(statusless), Bid)


def test_retreaver_without_expiry_has_none() -> None:
    answer = retreaver({k: v for k, v in RESERVED.items() if k != "expires_at"})
    assert isinstance(answer, Bid) and answer.expires_in is None


def test_an_answer_from_rtbridge_itself_reads_as_retreaver() -> None:
    """Another rtbridge is a buyer of the retreaver format: its reserved answer is a bid."""
    ours = {"uuid": "0190d6c4-0000-7000-8000-000000000001", "status": "reserved",
            "retreaver_payout": 12.5, "retreaver_seconds": 60, "inbound_number": "+18339510260",
            "sip_address": "0190d6c4-0000-7000-8000-000000000001@sip.rtb.example.com",
            "expires_at": "2026-05-05T06:00:30.000Z"}  # fmt: skip
    answer = retreaver(ours)
    assert answer == Bid(12.5, "sip:" + ours["sip_address"], 30, ours["uuid"], seconds=60)
