"""The request screen (sip/screen.py): what the agent answers to each method, in and out of
a dialog, and what a source over its request rate gets."""

from __future__ import annotations

import pytest

from rtbridge.sip.rate import SourceRate
from rtbridge.sip.screen import (
    ADD_ACCEPT,
    ADD_ALLOW,
    ADD_SUPPORTED,
    ALLOW,
    RequestScreen,
    Verdict,
    method_label,
)

SRC = "198.51.100.7"


def screen(rate: float = 0.0, burst: int = 1) -> RequestScreen:
    return RequestScreen(SourceRate(rate=rate, burst=burst), retry_after=5)


@pytest.mark.parametrize("method", ["INVITE", "ACK", "CANCEL", "OPTIONS"])
def test_out_of_dialog_only_what_a_b2bua_answers_goes_on(method: str) -> None:
    assert screen().screen(method, source_ip=SRC, in_dialog=False).code == 0


@pytest.mark.parametrize(
    "method", ["REFER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "PUBLISH", "REGISTER", "UPDATE",
               "INFO", "PRACK", "invite", "FOO"],
)  # fmt: skip
def test_out_of_dialog_anything_else_is_405_with_allow(method: str) -> None:
    verdict = screen().screen(method, source_ip=SRC, in_dialog=False)
    assert (verdict.code, verdict.why, verdict.caps) == (405, "method", ADD_ALLOW)


def test_out_of_dialog_bye_is_481_and_replaces_403() -> None:
    assert screen().screen("BYE", source_ip=SRC, in_dialog=False).code == 481
    verdict = screen().screen("INVITE", source_ip=SRC, in_dialog=False, replaces=True)
    assert (verdict.code, verdict.why) == (403, "replaces")


@pytest.mark.parametrize("method", ["INVITE", "UPDATE", "BYE", "ACK", "CANCEL", "PRACK"])
def test_in_dialog_call_methods_go_on(method: str) -> None:
    assert screen().screen(method, source_ip=SRC, in_dialog=True, dialog_found=True).code == 0


@pytest.mark.parametrize("method", ["SUBSCRIBE", "NOTIFY", "MESSAGE", "PUBLISH", "FOO"])
def test_in_dialog_others_are_405(method: str) -> None:
    verdict = screen().screen(method, source_ip=SRC, in_dialog=True, dialog_found=True)
    assert (verdict.code, verdict.why) == (405, "method")


def test_in_dialog_refer_is_403_with_allow() -> None:
    verdict = screen().screen("REFER", source_ip=SRC, in_dialog=True, dialog_found=True)
    assert (verdict.code, verdict.why, verdict.caps) == (403, "method", ADD_ALLOW)
    assert "transfer" in verdict.reason


def test_info_carries_dtmf_only() -> None:
    s = screen()
    for ctype in ("application/dtmf-relay", "application/dtmf"):
        assert s.screen("INFO", source_ip=SRC, in_dialog=True, dialog_found=True,
                        content_type=ctype).code == 0  # fmt: skip
    for ctype in ("", "application/sdp", "text/plain", "application/broadsoft"):
        verdict = s.screen("INFO", source_ip=SRC, in_dialog=True, dialog_found=True,
                           content_type=ctype)  # fmt: skip
        assert (verdict.code, verdict.why, verdict.caps) == (415, "info-body", ADD_ACCEPT)


def test_in_dialog_options_is_a_keepalive_and_a_missing_dialog_481() -> None:
    s = screen()
    ok = s.screen("OPTIONS", source_ip=SRC, in_dialog=True, dialog_found=True)
    assert ok == Verdict(200, caps=ADD_ALLOW | ADD_ACCEPT | ADD_SUPPORTED)
    for method in ("REFER", "OPTIONS", "INFO", "BYE", "INVITE"):
        gone = s.screen(method, source_ip=SRC, in_dialog=True, dialog_found=False)
        assert (gone.code, gone.why) == (481, "no-dialog"), method
    # ACK and CANCEL are pjsip's to match (an ACK is never answered)
    assert s.screen("ACK", source_ip=SRC, in_dialog=True, dialog_found=False).code == 0
    assert s.screen("CANCEL", source_ip=SRC, in_dialog=True, dialog_found=False).code == 0
    replaced = s.screen("INVITE", source_ip=SRC, in_dialog=True, dialog_found=True, replaces=True)
    assert replaced.code == 403


def test_over_the_request_rate_out_of_dialog_is_dropped_in_dialog_503() -> None:
    s = screen(rate=1.0, burst=3)
    assert [s.screen("OPTIONS", source_ip=SRC, in_dialog=False).code for _ in range(3)] == [0] * 3
    dropped = s.screen("OPTIONS", source_ip=SRC, in_dialog=False)
    assert (dropped.code, dropped.why) == (-1, "rate")
    assert s.screen("REFER", source_ip=SRC, in_dialog=False).code == -1  # no 405 to reflect
    busy = s.screen("UPDATE", source_ip=SRC, in_dialog=True, dialog_found=True)
    assert (busy.code, busy.why, busy.retry_after) == (503, "rate", 5)
    for method in ("ACK", "BYE", "CANCEL", "PRACK"):  # they end or complete calls
        assert s.screen(method, source_ip=SRC, in_dialog=True, dialog_found=True).code == 0
    assert s.screen("OPTIONS", source_ip="198.51.100.8", in_dialog=False).code == 0


def test_allow_and_metric_labels() -> None:
    assert "REFER" not in ALLOW and "SUBSCRIBE" not in ALLOW and "MESSAGE" not in ALLOW
    assert method_label("REFER") == "REFER"
    assert method_label("X" * 500) == "other" and method_label("invite") == "other"
