"""Benchmark: ``GET /admin/stats`` over 30 days of a site with ``--calls`` (1,000,000)
calls, against the same figures computed by scanning the rows, in one run.

The site: 10 publishers, each sending to 5 campaigns of 4 buyers (200 combinations, each
active in most hours: about 176,000 hourly rollup rows), one reservation per call spread
over 30 days (a tenth no-target, the rest claimed: most completed, a third converted),
written by bulk SQL on SQLite, then the rollups filled from the rows by ``rtbridge check
--rollups --repair`` (timed: what an upgraded site runs once). Then, on a live ``rtbridge
serve`` with an admin token, ``--requests`` (20) of each question an operator asks for the
30 days: by day, by hour, by publisher x campaign x buyer. The baseline answers the first
question from the rows themselves (the ``GROUP BY`` a site without rollups would run).

    .venv/bin/python bench/stats.py [--calls 1000000] [--requests 20] [--goal-ms 100]

Goal (issue 20): each question's median <= 100 ms. Checks: every answer 200; the rollups
equal their recount; the by-day totals equal the baseline's. Exit 0 all met, 1 not."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import rtbridge_server, server  # noqa: E402
from bench.verdict import Verdict  # noqa: E402

from rtbridge.storage.database import open_database  # noqa: E402
from rtbridge.storage.rollup_recount import check_rollups  # noqa: E402
from tests.support.admin import make_token  # noqa: E402

DAYS = 30
QUESTIONS = {
    "by day": {"group_by": "day"},
    "by hour": {"group_by": "hour"},
    "by publisher x campaign x buyer": {"group_by": "publisher,campaign,buyer"},
}
_RESERVATIONS = """
INSERT INTO reservation (uuid, key_id, publisher_id, campaign_id, buyer_id, status, reason,
    caller_number, tags, payout, revenue, seconds, created_at, expires_at, updated_at,
    webhook_pending)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count),
rows AS (SELECT i, printf('%08x-0000-7000-8000-%012x', i / 65536, i) AS uuid,
         strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || (i * 2592 / :count * 1000 + i % 1000)
                  || ' seconds') AS created,
         CASE WHEN (i / 200) % 10 = 0 THEN 'no-target' WHEN (i / 200) % 10 = 1 THEN 'failed'
              ELSE 'completed' END AS status FROM n)
SELECT uuid, 'key', 'pub-' || (i % 10), 'camp-' || ((i / 10) % 5),
    CASE WHEN status = 'no-target' THEN NULL ELSE 'buyer-' || ((i / 10) % 5) || '-' || ((i / 50) % 4) END,
    status, CASE WHEN status = 'no-target' THEN 'concurrency-cap-reached' END,
    '+1900' || printf('%07d', i), '{}', 12.5, 15.0, 60, created, created, created, false
FROM rows
"""  # 2592 * 1000 s = 30 days
_CALLS = """
INSERT INTO callrecord (reservation_uuid, agent, source, via, invite_at, answer_at, end_at,
    publisher_code, buyer_code, hangup_by, duration, converted, payout, revenue)
SELECT uuid, 'bench', '192.0.2.1', 'sip', created_at,
    CASE WHEN status = 'completed' THEN created_at END, created_at, 200,
    CASE WHEN status = 'completed' THEN 200 ELSE 486 END, 'publisher',
    CASE WHEN status = 'completed' THEN (abs(random()) % 180) ELSE 0 END,
    status = 'completed' AND rowid % 3 = 0,
    CASE WHEN status = 'completed' AND rowid % 3 = 0 THEN 12.5 ELSE 0 END,
    CASE WHEN status = 'completed' AND rowid % 3 = 0 THEN 15.0 ELSE 0 END
FROM reservation WHERE status <> 'no-target'
"""
# What a site without rollups would run for "by day": the recount's GROUP BY, over 30 days
_BASELINE = """
SELECT substr(r.created_at, 1, 10) AS day, count(*) AS pings, count(c.id) AS calls,
    sum(CASE WHEN c.converted THEN 1 ELSE 0 END) AS converted,
    sum(COALESCE(c.payout, 0)) AS payout, sum(COALESCE(c.revenue, c.payout, 0)) AS revenue
FROM reservation r LEFT JOIN callrecord c ON c.reservation_uuid = r.uuid
WHERE r.created_at >= :since GROUP BY 1 ORDER BY 1
"""


def fill(engine: Engine, calls: int) -> tuple[float, float]:
    """The rows (seconds to write them) and the rollups filled from them (seconds)."""
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text(_RESERVATIONS), {"count": round(calls / 0.9)})
        conn.execute(text(_CALLS))
    written = time.monotonic() - started
    started = time.monotonic()
    check_rollups(engine, repair=True)
    return written, time.monotonic() - started


def timed(client: httpx2.Client, params: dict[str, str], n: int) -> tuple[list[float], bool]:
    took, ok = [], True
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get("/admin/stats", params=params)
        took.append((time.perf_counter() - started) * 1000)
        ok = ok and answer.status_code == 200
    return took, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--goal-ms", type=float, default=100.0, metavar="MS",
                        help="median of each question, at most")  # fmt: skip
    args = parser.parse_args()
    verdict = Verdict("bench/stats.py")
    verdict.goals_from(parser, args)
    work = Path(tempfile.mkdtemp(prefix="rtbridge-stats-"))
    url = f"sqlite:///{work / 'stats.db'}"
    engine = open_database(url)
    written, filled = fill(engine, args.calls)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM reservation")).scalar_one()
        called = conn.execute(text("SELECT count(*) FROM callrecord")).scalar_one()
        rollups = conn.execute(text("SELECT count(*) FROM rollup")).scalar_one()
    print(f"{rows} reservations, {called} calls over {DAYS} days written in {written:.1f} s; "
          f"{rollups} rollup rows filled from them in {filled:.1f} s")  # fmt: skip
    since = (datetime.now(UTC) - timedelta(days=DAYS + 1)).replace(minute=0, second=0)
    started = time.perf_counter()
    with engine.connect() as conn:
        baseline = conn.execute(
            text(_BASELINE), {"since": since.strftime("%Y-%m-%d %H:%M:%S")}
        ).all()
    scan_ms = (time.perf_counter() - started) * 1000
    report = check_rollups(engine)
    verdict.check("the rollups equal their recount", report.differences == (),
                  f"{len(report.differences)} differ")  # fmt: skip
    token = make_token(url)
    medians = {}
    with server(*rtbridge_server(url)) as base:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx2.Client(base_url=base, headers=headers, timeout=30) as client:
            for name, params in QUESTIONS.items():
                query = {**params, "since": since.isoformat()}
                timed(client, query, 2)  # warm-up
                took, ok = timed(client, query, args.requests)
                medians[name] = statistics.median(took)
                print(f"GET /admin/stats {name:<34} median {medians[name]:7.1f} ms, "
                      f"max {max(took):7.1f} ms")  # fmt: skip
                verdict.check(f"{name}: every answer 200", ok, "")
                verdict.goal(f"{name}: median", medians[name] <= args.goal_ms,
                             f"{medians[name]:.1f} ms (goal <= {args.goal_ms:g} ms)")  # fmt: skip
            by_day = client.get("/admin/stats", params={"group_by": "day",
                                                        "since": since.isoformat()}).json()  # fmt: skip
    print(f"baseline: by day from the rows {scan_ms:9.1f} ms")
    print(f"{'rows / rollups, by day':<34}= {scan_ms / medians['by day']:.0f}x")
    same = [(r["day"], r["pings"], r["calls"], r["converted"]) for r in by_day["rows"]] == [
        (b.day, b.pings, b.calls, b.converted) for b in baseline
    ]
    verdict.check("by day: the same figures as the baseline's", same, "")
    engine.dispose()
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
