"""What the agent answers to every SIP request before pjsip's dialogs and pjsua's handlers
see it (SPEC §4.6): a B2BUA for real-time bidding needs a few methods, and each one more is
a door. pjsua, left alone, accepts a REFER and dials its target (toll fraud), answers
SUBSCRIBE and MESSAGE from anyone (and NOTIFYs whatever Contact a subscriber names) and
answers odd in-dialog requests with ``500``.

The screen runs in the pjsip module ``pjproject/patches/0006`` adds, after the transaction
layer (retransmissions never reach it) and before the dialog layer; the agent forwards each
request's facts to :meth:`RequestScreen.screen` and sends what it decides. Pure Python.

Out of dialog (no To tag): INVITE, ACK, CANCEL and OPTIONS go on; BYE → ``481``; any other
method → ``405`` with ``Allow``. In dialog: re-INVITE, UPDATE, BYE, ACK, CANCEL, PRACK go on;
INFO goes on when it carries DTMF (``application/dtmf-relay`` or ``application/dtmf``), else
``415`` with ``Accept``; OPTIONS is answered ``200`` (SBCs use it as a keep-alive; RFC 3261
§11); REFER → ``403`` (a transfer is refused, not merely unsupported: the publisher's SBC
should not try another way to make the agent dial elsewhere); anything else → ``405``; a
request naming a dialog that does not exist → ``481``. An
INVITE carrying ``Replaces`` (RFC 3891) → ``403``: it would let whoever knows a dialog's
identifiers take over that call.

Every request spends a token of its source's ``request_rate`` bucket. A source out of
tokens has its requests dropped unanswered out of dialog (no answer to reflect at a forged
source) and answered ``503`` + ``Retry-After`` in dialog — except ACK, BYE, CANCEL and PRACK,
which complete or end calls and always go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rtbridge.sip.auth.allowlist import IPAddress
from rtbridge.sip.rate import SourceRate

# What the agent answers, advertised in its Allow / Accept / Supported headers (INVITEs,
# their 2xx, OPTIONS answers and every 405/415 below).
ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "INFO", "PRACK")
DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")
ACCEPT = ("application/sdp", *DTMF_TYPES)
SUPPORTED = ("timer", "100rel")

# pjsua.h PJSUA_SCREEN_ADD_* (macros SWIG does not export): capability headers to add.
ADD_ALLOW = 1
ADD_ACCEPT = 2
ADD_SUPPORTED = 4

# Requests that complete or end a call: never refused for the rate, or a flood from one
# source would leave its own calls up (and holding buyer units) after it hung up.
_ENDING = frozenset(("ACK", "BYE", "CANCEL", "PRACK"))
_OUT_OF_DIALOG = frozenset(("INVITE", "ACK", "CANCEL", "OPTIONS"))
_IN_DIALOG = frozenset(("INVITE", "UPDATE", "BYE", "ACK", "CANCEL", "PRACK"))
# Method label of the screened-requests metric: the methods worth telling apart, the rest
# "other" (the method is the sender's text: it must not choose the metric's labels).
METHOD_LABELS = (
    *ALLOW, "REFER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "PUBLISH", "REGISTER", "other",
)  # fmt: skip

Why = Literal["method", "no-dialog", "info-body", "replaces", "rate"]
WHYS: tuple[Why, ...] = ("method", "no-dialog", "info-body", "replaces", "rate")


@dataclass(frozen=True, slots=True)
class Verdict:
    """``code`` 0: let pjsip handle the request; -1: drop it unanswered; else answer it.
    ``why`` names a refusal (:data:`WHYS`), "" for a request let through or answered 200."""

    code: int
    reason: str = ""
    why: Why | Literal[""] = ""
    retry_after: int = 0
    caps: int = 0


PASS = Verdict(0)
_KEEPALIVE = Verdict(200, caps=ADD_ALLOW | ADD_ACCEPT | ADD_SUPPORTED)
_NOT_ALLOWED = Verdict(405, "Method Not Allowed", "method", caps=ADD_ALLOW)
_NO_DIALOG = Verdict(481, "Call/Transaction Does Not Exist", "no-dialog")
_NOT_DTMF = Verdict(415, "Unsupported Media Type (INFO carries DTMF only)", "info-body",
                    caps=ADD_ACCEPT)  # fmt: skip
_REPLACES = Verdict(403, "Forbidden (Replaces is not accepted)", "replaces")
_NO_TRANSFER = Verdict(403, "Forbidden (transfers are not accepted)", "method", caps=ADD_ALLOW)
_DROP = Verdict(-1, why="rate")


def method_label(method: str) -> str:
    """The metric label of a request method (a fixed set, whatever the sender wrote)."""
    return method if method in METHOD_LABELS else "other"


class RequestScreen:
    """Decides each request; one caller (the agent's pjsua2 thread), so no lock."""

    def __init__(self, rate: SourceRate, *, retry_after: int) -> None:
        self._rate = rate
        self._busy = Verdict(503, "Service Unavailable", "rate", retry_after=retry_after)

    def screen(
        self,
        method: str,
        *,
        source_ip: IPAddress | str,
        in_dialog: bool,
        dialog_found: bool = False,
        replaces: bool = False,
        content_type: str = "",
    ) -> Verdict:
        """The verdict on one request (methods are case-sensitive, RFC 3261 §7.1)."""
        if not self._rate.take(source_ip) and method not in _ENDING:
            return self._busy if in_dialog else _DROP
        if not in_dialog:
            if method == "INVITE" and replaces:
                return _REPLACES
            if method in _OUT_OF_DIALOG:
                return PASS
            return _NO_DIALOG if method == "BYE" else _NOT_ALLOWED
        if method == "ACK" or method == "CANCEL":
            return PASS  # pjsip matches them (an ACK is never answered)
        if not dialog_found:
            return _NO_DIALOG
        if method in _IN_DIALOG:
            return _REPLACES if replaces and method == "INVITE" else PASS
        if method == "INFO":
            return PASS if content_type in DTMF_TYPES else _NOT_DTMF
        if method == "OPTIONS":
            return _KEEPALIVE
        return _NO_TRANSFER if method == "REFER" else _NOT_ALLOWED
