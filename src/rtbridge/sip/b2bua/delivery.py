"""Call events and heartbeats, from the pjsua2 thread to the router, in order.

One thread of its own (the *event thread*) runs ``Router.on_events`` and
``Router.heartbeat`` in the order the agent produced them, so a recorder sees ``ringing`` →
``answered`` → ``ended`` for each call, and a heartbeat only after the events before it.
Events are collected per poll of the agent thread and handed over as one job: each hand-over
wakes the event thread, a futex round trip that costs more than the event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip.b2bua.bridge import Bridge
from rtbridge.sip.lease import LeaseRefused
from rtbridge.sip.router import CallEvent, Carried, Router

log = logging.getLogger("rtbridge.sip.b2bua.delivery")
_Pending = tuple[CallEvent, Future[RecordingOutcome] | None]


class Delivery:
    def __init__(
        self, router: Router, fenced: threading.Event, stop: threading.Event,
        settled: Callable[[str], None] = lambda uuid: None,
    ) -> None:  # fmt: skip
        """``fenced``: set when a heartbeat finds the lease taken, cleared once rejoined;
        ``stop``: set when the agent must stop (its id is now another agent's);
        ``settled(uuid)``: a completed recording's outcome was handed to the router (its
        parts may go)."""
        self._router = router
        self._settled = settled
        self._fenced = fenced
        self._stop = stop
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[_Pending] = []
        # calls an admin asked to hang up, found by heartbeats, for the agent thread
        self._hangups: set[str] = set()
        self._hangups_lock = threading.Lock()

    def take_hangups(self) -> set[str]:
        """Agent thread: the reservations whose calls an admin asked to hang up, once."""
        with self._hangups_lock:
            asked, self._hangups = self._hangups, set()
        return asked

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rtbridge-events")

    def stop(self) -> None:
        """Deliver what is queued, then return: events are the call records."""
        if self._pool is not None:
            self.flush()
            self._pool.shutdown(wait=True)
        self._pool = None

    def emit(self, event: CallEvent, recording: Future[RecordingOutcome] | None = None) -> None:
        """Agent thread: queue an event for this poll's batch; ``recording``: the outcome of
        the call's recording, still being joined, which the event carries once known."""
        self._pending.append((event, recording))

    def flush(self) -> None:
        """Agent thread, once per poll: hand this poll's events over."""
        if self._pending and self._pool is not None:
            batch, self._pending = self._pending, []
            self._pool.submit(self._deliver_all, batch)

    def heartbeat(self, bridges: Iterable[Bridge], interval: float) -> None:
        """Agent thread: a heartbeat means calls were being carried at this moment; it is
        written after the events before it."""
        if self._pool is not None:
            at = datetime.now(UTC)
            self._pool.submit(self._deliver_heartbeat, at, carried(bridges, at, interval))

    def run(self, job: Callable[[], None]) -> None:
        """Agent thread: run ``job`` on the event thread, after the events queued before it:
        work that may take long enough to stall the agent thread (``malloc_trim``)."""
        if self._pool is not None:
            self._pool.submit(job)

    def deliver(self, event: CallEvent) -> None:
        """Record one event now, on the calling thread (a claim answered after the agent
        stopped: the event thread is gone, the record must still be written)."""
        try:
            self._router.on_event(event)
        except Exception:
            log.exception("router.on_event failed for %s", event.reservation_uuid)

    def _deliver_all(self, batch: list[_Pending]) -> None:
        self._write([event for event, _ in batch])
        for event, joined in batch:  # after its "ended": the outcome follows it
            if joined is not None:
                joined.add_done_callback(partial(self._joined, event))

    def _write(self, events: list[CallEvent]) -> None:
        try:
            self._router.on_events(events)
        except Exception:  # one bad event must not lose the others' records
            log.exception("router.on_events failed; recording one by one")
            for event in events:
                self.deliver(event)

    def _joined(self, ended: CallEvent, joined: Future[RecordingOutcome]) -> None:
        """The join's thread (or this one, when it was done already): queue the call's
        "recorded" event behind the events handed over so far; written here when the event
        thread is gone (the agent stopping: its joins are waited for)."""
        recorded = replace(ended, kind="recorded", recording=_outcome(ended, joined),
                           dialogs=None, attempts=())  # fmt: skip
        pool = self._pool
        try:
            if pool is not None:
                pool.submit(self._write_recorded, recorded)
                return
        except RuntimeError:  # shut down meanwhile
            pass
        self._write_recorded(recorded)

    def _write_recorded(self, recorded: CallEvent) -> None:
        """The outcome first, then the parts go: a crash between the two leaves them for
        the repair at the next start (``sip/recording_repair.py``)."""
        self._write([recorded])
        if recorded.recording is not None and recorded.recording.status == "completed":
            self._settled(recorded.reservation_uuid)

    def rejoin(self, retry: float) -> None:
        """Agent thread, once fenced and its calls hung up: take the lease again, off this
        thread, every ``retry`` s until the database lets it."""
        if self._pool is not None:
            self._pool.submit(self._rejoin, retry)

    def _deliver_heartbeat(self, at: datetime, held: Carried) -> None:
        try:
            if self._router.heartbeat(at, held) is False:
                self._fenced.set()
            elif asked := self._router.hangups_asked():
                with self._hangups_lock:
                    self._hangups.update(asked)
        except Exception:
            log.exception("router.heartbeat failed")

    def _rejoin(self, retry: float) -> None:
        while not self._stop.is_set():
            try:
                self._router.rejoin()
            except LeaseRefused as exc:
                log.error("cannot rejoin: %s; stopping", exc)
                self._stop.set()
                return
            except Exception:
                log.warning("rejoin failed; trying again in %.1f s", retry, exc_info=True)
                self._stop.wait(retry)
                continue
            self._fenced.clear()
            return


def _outcome(ended: CallEvent, joined: Future[RecordingOutcome]) -> RecordingOutcome:
    try:
        return joined.result()
    except Exception as exc:  # a bug in the join: the call was recorded all the same
        log.exception("recording join failed", extra={"uuid": ended.reservation_uuid})
        return RecordingOutcome.failed(f"join failed: {exc}")


def carried(bridges: Iterable[Bridge], at: datetime, interval: float) -> Carried:
    """The reservations the agent's bridges hold at ``at``, for the router's orphan sweep.

    A bridge knows its uuid once the router's answer reached the agent thread; until then
    (routing) its claim may already be committed. The sweep must never close such a call, so
    the snapshot describes only claims made before the oldest routing bridge's INVITE: the
    router claims after the bridge exists, on the same wall clock. The grace (two heartbeats)
    covers a clock stepped back meanwhile. A bridge that ended is gone from the agent's set
    only after its "ended" event was queued, and that event reaches the event thread before
    this heartbeat does."""
    uuids: set[str] = set()
    oldest = at
    for bridge in bridges:
        if bridge.plan is not None:
            uuids.add(bridge.plan.reservation_uuid)
        elif bridge.phase == "routing" and bridge.invite_at < oldest:
            oldest = bridge.invite_at
    return Carried(frozenset(uuids), oldest - timedelta(seconds=2 * interval))
