"""INVITEs answered 503 with no transaction behind the answer, remembered so that their
retransmissions get the same answer instead of a call.

pjsua refuses an INVITE statelessly when every call slot is taken (pjproject/patches/0001):
no transaction keeps its 503, so a retransmission of that INVITE — sent by a publisher
whose timer fired before the 503 reached it, arriving once a slot is free — would be taken
for a new call: routed, its reservation claimed, bridged and billed to a buyer, answered 200
to a publisher who has given up on it. A UAC retransmits an INVITE for at most 64*T1 (32 s,
RFC 3261 §17.1.1.2); the key of each such refusal is kept that long, and the request screen
answers a retransmission with the same 503. Pure Python, no pjsua: agent thread only."""

from __future__ import annotations

import re
from collections import OrderedDict

KEEP_SECONDS = 32.0  # 64 * T1
MAX_KEPT = 65_536  # under a flood, the oldest go first

_BRANCH = re.compile(r"^(?:via|v)[ \t]*:[^\r\n]*?;[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)", re.I | re.M)
_CALL_ID = re.compile(r"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.I | re.M)


def transaction_key(message: str) -> str | None:
    """What identifies an INVITE's retransmissions: its top Via branch and its Call-ID
    (RFC 3261 §17.2.3), None when either is missing."""
    branch = _BRANCH.search(message)
    call_id = _CALL_ID.search(message)
    if branch is None or call_id is None:
        return None
    return f"{branch.group(1)} {call_id.group(1)}"


class RefusedInvites:
    """Keys of INVITEs refused statelessly, each for :data:`KEEP_SECONDS`."""

    def __init__(self, keep: float = KEEP_SECONDS, limit: int = MAX_KEPT) -> None:
        self._keep = keep
        self._limit = limit
        self._until: OrderedDict[str, float] = OrderedDict()  # key -> monotonic expiry

    def __bool__(self) -> bool:
        return bool(self._until)

    def remember(self, key: str, now: float) -> None:
        self._forget(now)
        self._until[key] = now + self._keep
        self._until.move_to_end(key)
        while len(self._until) > self._limit:
            self._until.popitem(last=False)

    def refused(self, key: str, now: float) -> bool:
        """Was this INVITE refused statelessly in the last :data:`KEEP_SECONDS`?"""
        until = self._until.get(key)
        return until is not None and until > now

    def _forget(self, now: float) -> None:
        while self._until:
            key, until = next(iter(self._until.items()))
            if until > now:
                return
            del self._until[key]
