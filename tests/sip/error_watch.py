"""Errors an agent under test swallowed: a test that runs an agent fails on them.

The agent never lets an exception unwind into pjsua2's C code: its callbacks, timers and
jobs catch everything and log it (``log.exception``), and the call goes on or ends as best
it can — so a bug there leaves no trace in a test's outcome unless something reads the log.
:class:`ErrorWatch` does: every ERROR or CRITICAL record of an ``rtbridge`` logger, and
every exception that reached ``sys.excepthook`` (where SWIG's director puts one a pjsua2
callback let escape), fails the test at teardown.

``rtbridge.pjsip`` (pjsip's own log) is left out: at level 1 pjsip reports what peers and
the network did — a malformed datagram from a fuzzer, a peer's socket gone, a transport
closed under a flood — not a fault of the agent; what pjsip refuses, the tests assert on
the wire.

A test whose point is an error names it: ``@pytest.mark.allow_agent_errors("regex", ...)``
allows records (and escaped exceptions) whose message matches one of the patterns.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterator
from types import TracebackType

import pytest

PJSIP = "rtbridge.pjsip"
MARKER = "allow_agent_errors"


class ErrorWatch(logging.Handler):
    """Collects the agent's errors while installed (``watch()``)."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(logging.ERROR)
        self.allowed = tuple(re.compile(pattern) for pattern in allowed)
        self.errors: list[str] = []  # what went wrong, one text each
        self.allowed_seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == PJSIP or record.name.startswith(PJSIP + "."):
            return
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self._note(record.getMessage(), text)

    def excepthook(
        self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        """An exception a pjsua2 callback let escape: SWIG prints it through here."""
        text = "".join(traceback.format_exception(kind, exc, tb)).rstrip()
        self._note(f"{kind.__name__}: {exc}", f"escaped into pjsua2: {text}")

    def _note(self, message: str, text: str) -> None:
        if any(pattern.search(message) for pattern in self.allowed):
            self.allowed_seen.append(text)
        else:
            self.errors.append(text)

    def report(self) -> str:
        shown = "\n\n".join(self.errors[:5])
        more = f"\n\n… and {len(self.errors) - 5} more" if len(self.errors) > 5 else ""
        return (
            f"the agent logged {len(self.errors)} error(s) (mark the test "
            f"@pytest.mark.{MARKER}('pattern') if an error is its point):\n\n{shown}{more}"
        )


@pytest.fixture
def agent_errors(request: pytest.FixtureRequest) -> Iterator[ErrorWatch]:
    """Watch the ``rtbridge`` loggers and ``sys.excepthook`` for the whole test, the
    agent's start and stop included (fixtures that start an agent depend on this one, so it
    is set up before them and checked after they stopped it)."""
    allowed: list[str] = []
    for marker in request.node.iter_markers(MARKER):
        allowed += [str(pattern) for pattern in marker.args]
    watch = ErrorWatch(tuple(allowed))
    logger = logging.getLogger("rtbridge")
    logger.addHandler(watch)
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        watch.excepthook(kind, exc, tb)
        previous(kind, exc, tb)

    sys.excepthook = hook
    try:
        yield watch
    finally:
        sys.excepthook = previous
        logger.removeHandler(watch)
    if watch.errors:
        pytest.fail(watch.report(), pytrace=False)
