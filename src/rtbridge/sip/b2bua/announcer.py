"""The agent's recording notices (SPEC §4.8): one pjsua2 ``AudioMediaPlayer`` per bridge
whose plan names a notice, played to both parties from the buyer's answer; the bridge joins
their audio when it has played (``bridge.py``).

Why a player per call: a player is a position in one file, so calls answered at different
moments cannot share one. It lives for the notice's seconds (30 at most), and pjproject is
built with as many players as call slots (``PJSUA_MAX_PLAYERS``).

Why a timer rather than pjsua2's end-of-file callback: ``onEof2`` runs on the conference's
media thread, where no pjsua2 object may be touched; the notice's length is known (the file
is read before it plays), so the agent thread bridges the call when that much time has
passed since the player was connected.

A file is checked (:func:`read_announcement`) when first named and again whenever it
changes on disk (one ``stat`` per call). A notice that cannot be played is not a failed
call: the call is bridged at once and **not recorded** — a recording whose notice was not
heard is one nobody agreed to.
"""

from __future__ import annotations

import logging
from typing import Any

import pjsua2 as pj

from rtbridge.sip.announcements import Announcement, read_announcement, stamp_of
from rtbridge.sip.b2bua.leg import error_text

log = logging.getLogger("rtbridge.sip.b2bua.announcer")

# The conference pulls a player's first frame on its next tick after the connection, and a
# frame lasts 20 ms: the bridge waits this much past the notice's length.
MARGIN = 0.1


class Notice:
    """One call's notice: its player and how long it plays. Agent thread only; the bridge
    holds the one reference, and dropping it destroys the player (its conference port goes
    with it)."""

    def __init__(self, player: Any, seconds: float) -> None:
        self._player: Any = player
        self.seconds = seconds

    def play_to(self, *media: Any) -> None:
        """Send the notice to each of ``media`` (a leg, a recorder). A connection made twice
        is one, so a leg whose media moved is simply connected again."""
        for sink in media:
            self._player.startTransmit(sink)


class Announcer:
    """The notices the agent has read, by path, and their players."""

    def __init__(self) -> None:
        self._known: dict[str, Announcement] = {}

    def start(self, path: str) -> Notice | str:
        """Agent thread: a player for the notice at ``path``, or why there is none."""
        try:
            announcement = self._checked(path)
            player = pj.AudioMediaPlayer()
            player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        except ValueError as exc:
            return str(exc)
        except pj.Error as exc:
            return f"{path}: {error_text(exc)}"
        return Notice(player, announcement.seconds + MARGIN)

    def _checked(self, path: str) -> Announcement:
        """The file as last read, read again when it changed (or was never read)."""
        known = self._known.get(path)
        try:
            stamp = stamp_of(path)
        except ValueError:
            self._known.pop(path, None)
            raise
        if known is None or known.stamp != stamp:
            known = read_announcement(path)
            self._known[path] = known
        return known
