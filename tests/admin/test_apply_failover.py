"""Failover's settings in ``rtbridge apply``: a campaign's ``failover`` and ``max_attempts``,
a buyer's ``ring_timeout`` and ``connect_timeout`` — stored, read back by the catalog the SIP
agent routes with, defaulted when left out, and refused with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from rtbridge.admin.apply import apply_file
from rtbridge.config.schema import ConfigError
from rtbridge.storage.catalog import load_catalog
from rtbridge.storage.database import open_database
from rtbridge.storage.models import Buyer, Campaign
from tests.admin.test_apply import DEMO, Files, dump

ALL = ("no-answer", "busy", "rejected", "unreachable")
SETTINGS = """
[[campaigns]]
id = "auto"
failover = ["unreachable", "busy"]
max_attempts = 5
[[campaigns.buyers]]
id = "acme"
destination = "sip:queue@127.0.0.1:5070"
payout = 90.0
seconds = 120
ring_timeout = 20
connect_timeout = 1.5
[[campaigns.buyers]]
id = "zen"
destination = "sip:zen@127.0.0.1:5071"
payout = 95.0
seconds = 120
[[campaigns]]
id = "quiet"
failover = []
max_attempts = 1
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{db_path}")
    yield engine
    engine.dispose()


@pytest.fixture
def write(tmp_path: Path) -> Files:
    return Files(tmp_path)


def test_settings_are_stored_and_the_catalog_reads_them(engine: Engine, write: Files) -> None:
    apply_file(engine, write(SETTINGS))
    with Session(engine) as s:
        auto, acme = s.get(Campaign, "auto"), s.get(Buyer, "acme")
        assert auto is not None and acme is not None
        assert (auto.failover, auto.max_attempts) == (["busy", "unreachable"], 5)
        assert (acme.ring_timeout, acme.connect_timeout) == (20.0, 1.5)
    catalog = load_catalog(engine)
    auto_info, quiet_info = catalog.campaigns["auto"], catalog.campaigns["quiet"]
    assert auto_info.failover == frozenset({"busy", "unreachable"})
    assert auto_info.max_attempts == 5
    assert (quiet_info.failover, quiet_info.max_attempts) == (frozenset(), 1)
    acme_info, zen_info = auto_info.buyers
    assert (acme_info.ring_timeout, acme_info.connect_timeout) == (20.0, 1.5)
    assert (zen_info.ring_timeout, zen_info.connect_timeout) == (None, 2.0)  # the defaults


def test_left_out_the_defaults_are_stored(engine: Engine) -> None:
    apply_file(engine, DEMO)
    with Session(engine) as s:
        auto, acme = s.get(Campaign, "auto"), s.get(Buyer, "acme")
        assert auto is not None and acme is not None
        assert (auto.failover, auto.max_attempts) == (list(ALL), 3)
        # None: the agent's ring_timeout, and 2 s; a later change of either default applies
        assert (acme.ring_timeout, acme.connect_timeout) == (None, None)
    info = load_catalog(engine).campaigns["auto"]
    assert info.failover == frozenset(ALL) and info.max_attempts == 3


def test_the_file_again_is_no_change_whatever_the_order_of_kinds(
    engine: Engine, write: Files
) -> None:
    apply_file(engine, write(SETTINGS))
    assert apply_file(engine, write(SETTINGS)).lines() == ["no changes"]
    reordered = SETTINGS.replace('["unreachable", "busy"]', '["busy", "unreachable"]')
    assert apply_file(engine, write(reordered)).lines() == ["no changes"]


def test_changes_and_removals_are_reported(engine: Engine, write: Files) -> None:
    apply_file(engine, write(SETTINGS))
    changed = (
        SETTINGS.replace('failover = ["unreachable", "busy"]', "failover = []")
        .replace("max_attempts = 5\n", "")
        .replace("ring_timeout = 20\n", "ring_timeout = 25\n")
        .replace("connect_timeout = 1.5\n", "")
    )
    report = apply_file(engine, write(changed))
    assert report.updated == [
        "campaign auto (failover ['busy', 'unreachable'] -> [], max_attempts 5 -> 3)",
        "buyer acme (ring_timeout 20.0 -> 25.0, connect_timeout 1.5 -> None)",
    ]
    # Left out of the file again: back to the defaults.
    report = apply_file(engine, write(changed.replace("failover = []\n", "", 1)))
    assert report.updated == [
        "campaign auto (failover [] -> ['no-answer', 'busy', 'rejected', 'unreachable'])"
    ]
    info = load_catalog(engine).campaigns["auto"]
    assert info.failover == frozenset(ALL) and info.max_attempts == 3


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ('["unreachable", "busy"]', '["busy", "voicemail"]',
         "campaigns[0].failover: 'voicemail' is not a failure kind (allowed: no-answer, busy, "
         "rejected, unreachable)"),
        ('["unreachable", "busy"]', '["busy", "busy"]',
         "campaigns[0].failover: 'busy' is listed twice"),
        ("max_attempts = 5", "max_attempts = 0",
         "campaigns[0].max_attempts: must be between 1 and 10"),
        ("ring_timeout = 20", "ring_timeout = 900",
         "campaigns[0].buyers[0].ring_timeout: must be more than 0 and at most 600 seconds"),
        ("connect_timeout = 1.5", "connect_timeout = 0",
         "campaigns[0].buyers[0].connect_timeout: must be more than 0 and at most 60 seconds"),
        ("connect_timeout = 1.5", "connect_timeout = 30",
         "campaigns[0].buyers[0].connect_timeout: 30 s is not less than ring_timeout (20 s): "
         "the connect timeout must be shorter than the ring timeout"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_and_changes_nothing(
    engine: Engine, write: Files, db_path: Path, old: str, new: str, error: str
) -> None:
    apply_file(engine, write(SETTINGS))
    before = dump(db_path)
    assert old in SETTINGS
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write(SETTINGS.replace(old, new, 1)))
    assert info.value.errors == [error]
    assert dump(db_path) == before


def test_a_campaign_stored_without_failover_reads_as_every_kind(engine: Engine) -> None:
    """A row whose failover is NULL (written by hand, or by an older tool) has the default;
    the file's next run writes it out."""
    apply_file(engine, DEMO)
    with engine.begin() as conn:
        conn.execute(text("UPDATE campaign SET failover = NULL"))
    assert load_catalog(engine).campaigns["auto"].failover == frozenset(ALL)
    report = apply_file(engine, DEMO)
    assert report.updated == [f"campaign auto (failover None -> {list(ALL)!r})"]
    with Session(engine) as s:
        auto = s.get(Campaign, "auto")
        assert auto is not None and auto.failover == list(ALL)
