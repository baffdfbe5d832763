"""Benchmark: what STIR/SHAKEN costs an INVITE (issue 23). The router's decision —
authenticate, attest, check, claim — for signed INVITEs verified against a test STI-CA
(its x5u on loopback HTTPS, the chain cached as in production), against the same INVITEs
routed by a router that verifies nothing, in one run, alternating trials.

The configuration users run: a SQLite file, a campaign with ``min_attestation = "B"``, a
capped buyer, a DID pool, every INVITE a new reservation of a new caller whose token names
its own ``orig``; one routing thread (the agent runs ``router_workers`` of them).

    .venv/bin/python bench/stir.py [--invites 2000] [--trials 5] [--goal-added-us 250]

Goal: verification adds at most 250 µs of routing to an INVITE (1/verified - 1/unverified
routes per second): a tenth of a core at the agent's 400 calls/s. The ratio of the two
rates is printed, not judged: an ES256 verification is ~70 µs of OpenSSL alone, against a
route of ~0.3 ms, so no verifier reaches 0.8x. Checks: every signed INVITE bridged and
attested A, one certificate fetch in all, the counters equal their recount. Also printed:
one verification alone, in µs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, as other benches

from bench.verdict import Verdict

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.sip.attester import Attester
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.sip.router import BridgeTo, IncomingInvite
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.support.stir import DEST, Sti, sti

KEY = "bench-stir-key-0000000000001"  # the campaign with min_attestation "B"
PLAIN = "bench-stir-key-0000000000002"  # the same campaign without a minimum: the baseline
CONFIG = f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "signed"
numbers = ["{DEST}"]
min_attestation = "B"

[[campaigns.buyers]]
id = "b1"
destination = "sip:queue@buyer.example.net"
payout = 5.0
seconds = 60
concurrency = 1000000
daily_cap = 100000000

[[campaigns]]
id = "plain"
numbers = ["+18339510261"]

[[campaigns.buyers]]
id = "b2"
destination = "sip:queue@buyer.example.net"
payout = 5.0
seconds = 60
concurrency = 1000000
daily_cap = 100000000

[[publishers]]
id = "p1"
ips = ["203.0.113.0/24"]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "signed"
ttl_seconds = 3600

[[keys]]
key = "{PLAIN}"
publisher = "p1"
campaign = "plain"
ttl_seconds = 3600
"""


def invites(
    reservations: Reservations, authority: Sti, count: int, first: int, *, key: str, signed: bool
) -> list[IncomingInvite]:
    """``count`` INVITEs of new reservations of ``key``, each (``signed``) signed A for its
    own caller."""
    made = []
    for n in range(first, first + count):
        caller = f"+1312{n:07d}"
        uuid = reservations.ping(PingRequest(key, caller, None)).uuid
        made.append(IncomingInvite(
            call_id=f"bench-{n}", source_ip=ip_address("203.0.113.7"), source_port=5060,
            transport="UDP", request_uri=f"sip:{uuid}@sip.rtb.example.com", ruri_user=uuid,
            from_user=caller.lstrip("+"), from_display="", authorization=None,
            identities=(authority.signer.sign("A", orig=caller),) if signed else (),
        ))  # fmt: skip
    return made


def timed(
    route: Callable[[IncomingInvite], object], batch: list[IncomingInvite]
) -> tuple[float, int]:
    """Routes per second over ``batch``, and how many were bridged (attested A, or none
    without a signature)."""
    started = time.perf_counter()
    answers = [route(invite) for invite in batch]
    took = time.perf_counter() - started
    good = sum(1 for a in answers if isinstance(a, BridgeTo) and a.attestation in ("A", "none"))
    return len(batch) / took, good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--invites", type=int, default=2000, help="INVITEs per trial")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--goal-added-us", type=float, default=250.0, metavar="US",
                        help="routing time verification adds to an INVITE, at most")  # fmt: skip
    args = parser.parse_args()
    verdict = Verdict("bench/stir.py")
    verdict.goals_from(parser, args)
    work = Path(tempfile.mkdtemp(prefix="rtbridge-stir-"))
    with sti(work) as authority:
        engine = open_database(f"sqlite:///{work / 'stir.db'}")
        config = work / "site.toml"
        config.write_text(CONFIG)
        apply_file(engine, config)
        catalog = CatalogCache(engine)
        reservations = Reservations(engine, catalog)
        verifier = authority.verifier()
        routers = {
            "verified": ReservationRouter(
                engine, catalog, secret=b"k" * 32, agent_id="bench", attester=Attester(verifier)
            ),
            # the baseline: unsigned INVITEs to the campaign without a minimum, routed by a
            # router that verifies nothing — the router before STIR/SHAKEN, the same claim
            "unverified": ReservationRouter(engine, catalog, secret=b"k" * 32, agent_id="bench"),
        }
        rates: dict[str, list[float]] = {name: [] for name in routers}
        good: dict[str, int] = dict.fromkeys(routers, 0)
        first = 0
        for trial in range(args.trials):
            for name, router in routers.items():
                signed = name == "verified"
                batch = invites(reservations, authority, args.invites, first,
                                key=KEY if signed else PLAIN, signed=signed)  # fmt: skip
                first += args.invites
                rate, ok = timed(router.route, batch)
                rates[name].append(rate)
                good[name] += ok
                print(f"trial {trial + 1} {name:<11} {rate:8.0f} routes/s", flush=True)
        token = authority.signer.sign("A", orig="+13125550100")
        started = time.perf_counter()
        for _ in range(2000):
            verifier.verify([token], orig="+13125550100", dest=DEST)
        alone = (time.perf_counter() - started) / 2000 * 1e6
        fetches = sum(authority.server.fetches.values())
        report = check_counters(engine)
        engine.dispose()
    medians = {name: statistics.median(found) for name, found in rates.items()}
    ratio = medians["verified"] / medians["unverified"]
    added = (1 / medians["verified"] - 1 / medians["unverified"]) * 1e6
    for name, median in medians.items():
        print(f"{name:<11} median {median:8.0f} routes/s")
    print(f"one verification alone (chain cached): {alone:.0f} µs")
    print(f"verified / unverified = {ratio:.2f}; verification adds {added:.0f} µs an INVITE")
    total = args.trials * args.invites
    verdict.check("every signed INVITE bridged, attested A", good["verified"] == total,
                  f"{good['verified']} of {total}")  # fmt: skip
    verdict.check("every unsigned INVITE bridged", good["unverified"] == total,
                  f"{good['unverified']} of {total}")  # fmt: skip
    verdict.check("one certificate fetch in all", fetches == 1, f"{fetches} fetches")
    verdict.check("counters equal their recount", report.differences == (),
                  f"{len(report.differences)} differ")  # fmt: skip
    verdict.goal("routing time verification adds to an INVITE", added <= args.goal_added_us,
                 f"{added:.0f} µs (goal <= {args.goal_added_us:g} µs; rates {ratio:.2f}x)")  # fmt: skip
    return verdict.report()


if __name__ == "__main__":
    raise SystemExit(main())
