"""The agent's call recorders (SPEC §4.8): two pjsua2 ``AudioMediaRecorder`` per recorded
call, one per leg, joined into one stereo file when the call ends.

Why one recorder per leg, joined afterwards, rather than one recorder on a stereo port:
pjsua2 offers no stereo port to record into — pjmedia's splitter/combiner is not in its API,
and ``MediaConfig.channelCount = 2`` would make the whole conference bridge stereo, every
call paying for it whether recorded or not. A recorder is one more conference port fed by
the leg's port (``startTransmit``), whose frames the bridge already has: the measured cost
is in docs/sip-agent.md ("Recording"). The join is a copy of two small files (8 kHz PCM16
mono: 16 kB a second each) done once, on a worker thread.

Threads: recorders are created, connected and destroyed on the agent thread, like every
pjsua2 object; the conference's media thread writes their files (pjmedia buffers and writes
in 4 kB steps, to the page cache). The join (``sip/recordings.py``) runs on one worker
thread of its own (``rtbridge-recording``); the call's "ended" record does not wait for it,
its outcome follows as a "recorded" event (``delivery.py``): 500 calls ending together must
not hold the event thread, and the buyers' concurrency slots, while 500 files are joined. A
recorder object stays referenced by its :class:`CallRecording` until the agent thread
destroys it (pjsua2's ``~AudioMediaRecorder`` closes the file and fixes its WAV header;
after ``libDestroy`` it would abort).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pjsua2 as pj

from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip.b2bua.leg import error_text
from rtbridge.sip.recordings import discard_parts, join, part_paths, prepare_directory, stereo_path

log = logging.getLogger("rtbridge.sip.b2bua.recorder")


class Recordings:
    """Where the agent records, its join worker and its counters (read by ``/health`` and
    ``/metrics`` from any thread: they change under a lock)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.in_progress = 0  # started, not yet joined
        self.bytes_written = 0  # stereo files' bytes since start
        self.failures = 0  # recordings that failed since start
        self.last_error = ""  # the latest failure's words
        self.writable: bool | None = None  # at the last check; None: not checked yet

    def check_directory(self) -> str | None:
        """Create the directory if needed; None when files can be made there, else why not."""
        why = prepare_directory(self.directory)
        with self._lock:
            self.writable = why is None
            if why is not None:
                self.last_error = why
        return why

    def start(self, uuid: str, answered: datetime) -> CallRecording:
        """Agent thread: open both legs' recorders for reservation ``uuid``'s call. A
        recording that cannot start is failed (and counted); the call goes on."""
        relative = stereo_path(uuid, answered)
        left_path, right_path = part_paths(self.directory, uuid)
        recorders: list[Any] = []
        try:
            if self.writable is not True and (why := self.check_directory()) is not None:
                raise OSError(why)
            for path in (left_path, right_path):
                recorder = pj.AudioMediaRecorder()
                recorder.createRecorder(str(path))
                recorders.append(recorder)
        except (pj.Error, OSError) as exc:
            recorders.clear()  # destroys what was made (this thread)
            discard_parts(self.directory, uuid)
            outcome = RecordingOutcome.failed(f"cannot record: {error_text(exc)}", relative)
            self._count(outcome)
            log.warning("recording failed to start", extra={"uuid": uuid, "error": outcome.error})
            return CallRecording(self, uuid, outcome)
        with self._lock:
            self.in_progress += 1
        return CallRecording(self, uuid, RecordingOutcome("recording", path=relative),
                             (recorders[0], recorders[1]))  # fmt: skip

    def refuse(self, uuid: str, answered: datetime, why: str) -> CallRecording:
        """Agent thread: a call that must not be recorded after all (its notice could not be
        played): failed with ``why``, and counted."""
        outcome = RecordingOutcome.failed(why, stereo_path(uuid, answered))
        self._count(outcome)
        log.warning("recording refused", extra={"uuid": uuid, "error": why})
        return CallRecording(self, uuid, outcome)

    def settled(self, uuid: str) -> None:
        """A completed recording's outcome is written: its parts go (any thread)."""
        discard_parts(self.directory, uuid)

    def stop(self) -> None:
        """Wait for the joins under way (the agent's teardown)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _join(self, uuid: str, relative: str) -> Future[RecordingOutcome]:
        """Join the parts on the worker thread; the outcome is counted when it is known."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="rtbridge-recording")
        return self._pool.submit(self._joined, uuid, relative)

    def _joined(self, uuid: str, relative: str) -> RecordingOutcome:
        outcome = join(self.directory, uuid, relative)
        with self._lock:
            self.in_progress -= 1
        self._count(outcome)
        if outcome.status == "failed":
            log.warning("recording failed", extra={"uuid": uuid, "error": outcome.error})
        return outcome

    def _abandoned(self) -> None:
        with self._lock:
            self.in_progress -= 1

    def _count(self, outcome: RecordingOutcome) -> None:
        with self._lock:
            if outcome.status == "failed":
                self.failures += 1
                self.last_error = outcome.error or ""
            else:
                self.bytes_written += outcome.size or 0


class CallRecording:
    """One call's recording: its two recorders (agent thread only) while it runs."""

    def __init__(
        self, owner: Recordings, uuid: str, started: RecordingOutcome,
        recorders: tuple[Any, Any] | None = None,
    ) -> None:  # fmt: skip
        """``started``: what the answer's record says ("recording", or "failed" and why)."""
        self._owner = owner
        self.uuid = uuid
        self.started = started
        self._recorders = recorders  # (the publisher's, the buyer's)

    def connect(self, publisher: Any, buyer: Any) -> None:
        """Agent thread: feed each leg's audio to its recorder (again after a re-INVITE
        moved the media: a connection made twice is one)."""
        if self._recorders is None:
            return
        left, right = self._recorders
        try:
            publisher.startTransmit(left)
            buyer.startTransmit(right)
        except pj.Error as exc:
            log.error("cannot connect the recorders: %s", error_text(exc),
                      extra={"uuid": self.uuid})  # fmt: skip

    def sinks(self) -> tuple[Any, ...]:
        """Agent thread: both recorders (to feed the call's notice into), none once closed."""
        return self._recorders or ()

    def finish(self) -> Future[RecordingOutcome]:
        """Agent thread, at the call's end: close both files, then join them off this
        thread. The future holds the outcome for the call's "recorded" event."""
        if self._recorders is None:  # it never started
            done: Future[RecordingOutcome] = Future()
            done.set_result(self.started)
            return done
        self._recorders = None  # the last references: pjsua2 closes the files here
        return self._owner._join(self.uuid, self.started.path or "")

    def abandon(self) -> None:
        """Agent thread, at teardown with the call still up: close the files and leave the
        parts for the repair at the next start (the call's record is closed there too)."""
        if self._recorders is not None:
            self._recorders = None
            self._owner._abandoned()
