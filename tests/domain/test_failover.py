"""The final answer a publisher hears when every buyer failed its call (RFC 3261 §16.7)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rtbridge.domain.failover import Attempt, AttemptKind, best_answer, failure_kind

T = datetime(2026, 12, 6, tzinfo=UTC)


def a(kind: AttemptKind, code: int | None) -> Attempt:
    return Attempt("b", "sip:b@example.com", T, T, kind, code)


@pytest.mark.parametrize(
    ("attempts", "heard"),
    [
        ([a("rejected", 503), a("busy", 486), a("no-answer", 408)], 486),  # busy beats all
        ([a("rejected", 500), a("rejected", 603), a("busy", 486)], 603),  # a 6xx first
        ([a("rejected", 404), a("rejected", 480)], 480),  # 480 before other 4xx
        ([a("rejected", 404), a("no-answer", 408)], 404),  # a timeout last among 4xx
        ([a("rejected", 503), a("unreachable", None)], 408),  # 4xx before 5xx
        ([a("rejected", 503)], 500),  # a buyer's 503 is not "try another agent"
        ([a("rejected", 401)], 480),  # our credentials, not the buyer's answer
        ([a("rejected", 302)], 480),  # a redirect we do not follow
        ([a("unreachable", 500)], 500),  # the agent could not dial it at all
        ([a("unreachable", None), a("unreachable", None)], 408),
    ],
)
def test_best_answer(attempts: list[Attempt], heard: int) -> None:
    assert best_answer(attempts) == heard


def test_busy_is_486_and_600_only() -> None:
    assert [failure_kind(c) for c in (486, 600, 603, 404, 503)] == [
        "busy", "busy", "rejected", "rejected", "rejected",
    ]  # fmt: skip
