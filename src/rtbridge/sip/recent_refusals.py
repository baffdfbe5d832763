"""The last INVITEs an agent refused, for operators (``GET /admin/refusals``, the console's
agent page): when, from where, the code, the reason and why, and the reservation or the
username the sender named. A publisher whose calls never arrive asks first "what did the
agent answer?", and the log lines alone (summarised per source: ``refusal_log.py``) are
not where a network admin looks.

Bounded (the last :data:`KEEP`), written to the agent's lease row at its next heartbeat and
only when something changed, so a flood of refused INVITEs costs the database one small
write per heartbeat, not one per INVITE. What a sender chose (username, uuid) is cut short.
Thread-safe: the router's worker threads note, the heartbeat takes."""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime
from typing import Any

from rtbridge.sip.router import IncomingInvite, Reject
from rtbridge.timestamps import iso_utc

KEEP = 50
_CHOSEN = 64  # characters of what the sender chose (a username, a R-URI user)
_CONTROL = dict.fromkeys(range(32), "?")


def _chosen(text: str | None) -> str | None:
    """What a sender chose, safe to store and show: cut short, control characters (NUL
    too) as ``?``, and bytes that were not UTF-8 (decoded as lone surrogates) escaped, so
    no hostile INVITE can make the refusals unwritable (the mutation fuzz sends them)."""
    if text is None:
        return None
    cut = text[:_CHOSEN].translate(_CONTROL)
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


class RecentRefusals:
    def __init__(self, keep: int = KEEP) -> None:
        self._kept: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._changed = False

    def note(self, at: datetime, invite: IncomingInvite, reject: Reject,
             username: str | None = None) -> None:  # fmt: skip
        refusal = {
            "at": iso_utc(at), "source": str(invite.source_ip), "transport": invite.transport,
            "code": reject.code, "reason": _chosen(reject.reason), "cause": reject.auth_failure,
            "ruri_user": _chosen(invite.ruri_user), "username": _chosen(username),
        }  # fmt: skip
        with self._lock:
            self._kept.append(refusal)
            self._changed = True

    def take(self) -> list[dict[str, Any]] | None:
        """The refusals, newest first, when they changed since the last take; else None."""
        with self._lock:
            if not self._changed:
                return None
            self._changed = False
            return list(reversed(self._kept))

    def changed_again(self) -> None:
        """A take whose write failed: the next heartbeat writes them again."""
        with self._lock:
            self._changed = True
