"""Group commit: pings answered in one transaction behave as if answered one by one."""

from __future__ import annotations

from pathlib import Path

from rtbridge.admin.apply import apply_file
from rtbridge.domain.errors import MissingCallerNumber, UnknownKey
from rtbridge.domain.ping import PingRequest
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from tests.conftest import write_config
from tests.support.demo import KEY_OPEN, one_buyer_config


def test_batch_respects_caps_shield_and_isolates_errors(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, one_buyer_config(buyer="concurrency = 2", key="")))
    ops = Reservations(engine, CatalogCache(engine))
    strict = PingRequest(key=KEY_OPEN, caller_number=None, inbound_number=None)
    batch = [
        PingRequest(key=KEY_OPEN, caller_number="+12025550101", inbound_number=None),
        PingRequest(key="unknown-key-0000000", caller_number="+12025550102", inbound_number=None),
        PingRequest(key=KEY_OPEN, caller_number="+12025550101", inbound_number=None),  # shielded
        PingRequest(key=KEY_OPEN, caller_number="+12025550103", inbound_number=None),
        PingRequest(
            key=KEY_OPEN, caller_number="+12025550104", inbound_number=None
        ),  # over the cap
        strict,
    ]
    results = ops.ping_many(batch)
    assert len(results) == len(batch)
    assert results[0].status == "reserved"  # type: ignore[union-attr]
    assert isinstance(results[1], UnknownKey)
    assert results[2].uuid == results[0].uuid and results[2].ping_shield  # type: ignore[union-attr]
    assert results[3].status == "reserved"  # type: ignore[union-attr]
    assert results[4].status == "no-target"  # type: ignore[union-attr]
    # the key allows a missing caller, so the last one is answered too (cap full → no-target)
    assert results[5].status == "no-target"  # type: ignore[union-attr]
    assert not isinstance(results[5], MissingCallerNumber)
    engine.dispose()
