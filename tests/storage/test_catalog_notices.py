"""A recorded call's notice in the catalog (issue 24): a buyer's own
``record_announcement``, else its campaign's, and only when the buyer's calls are recorded
(its own ``record``, else its campaign's); "" otherwise. The router copies it into each
call's plan (``BridgeTo.announcement``). On both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from rtbridge.admin.apply import apply_file
from rtbridge.storage.catalog import load_catalog
from rtbridge.storage.database import open_database
from tests.conftest import write_config
from tests.support.notices import SHIPPED, write_wav

# (campaign record, campaign notice) and, per buyer, (record, notice): None is unset
CAMPAIGNS = {
    "recorded": (True, True, {"inherits": (None, False), "own": (None, True),
                              "opts-out": (False, True), "opts-in": (True, False)}),
    "unrecorded": (False, True, {"inherits": (None, False), "own": (None, True),
                                 "opts-in": (True, False), "opts-in-own": (True, True)}),
    "silent": (True, False, {"inherits": (None, False), "own": (None, True)}),
}  # fmt: skip
# per buyer: (recorded?, whose notice its plans carry: "" is none)
EXPECTED = {
    "recorded": {"inherits": (True, "campaign"), "own": (True, "buyer"),
                 "opts-out": (False, ""), "opts-in": (True, "campaign")},
    "unrecorded": {"inherits": (False, ""), "own": (False, ""), "opts-in": (True, "campaign"),
                   "opts-in-own": (True, "buyer")},
    "silent": {"inherits": (True, ""), "own": (True, "buyer")},
}  # fmt: skip


def _config(buyer_notice: Path) -> str:
    lines = []
    for campaign, (record, notice, buyers) in CAMPAIGNS.items():
        lines += ["[[campaigns]]", f'id = "{campaign}"', f"record = {str(record).lower()}"]
        if notice:
            lines.append(f'record_announcement = "{SHIPPED}"')
        for buyer, (own_record, own_notice) in buyers.items():
            lines += ["[[campaigns.buyers]]", f'id = "{campaign}-{buyer}"',
                      'destination = "sip:q@127.0.0.1"', "payout = 1", "seconds = 1"]  # fmt: skip
            if own_record is not None:
                lines.append(f"record = {str(own_record).lower()}")
            if own_notice:
                lines.append(f'record_announcement = "{buyer_notice}"')
    return "\n".join(lines) + "\n"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    made = open_database(str(request.getfixturevalue(name)))
    request.addfinalizer(made.dispose)
    return made


def test_the_buyers_notice_else_the_campaigns_when_recorded(engine: Engine, tmp_path: Path) -> None:
    own = write_wav(tmp_path / "own.wav")
    apply_file(engine, write_config(tmp_path, _config(own)))
    words = {"campaign": str(SHIPPED), "buyer": str(own), "": ""}
    catalog = load_catalog(engine)
    for campaign, expected in EXPECTED.items():
        found = {b.rule.id.removeprefix(f"{campaign}-"): (b.record, b.announcement)
                 for b in catalog.campaigns[campaign].buyers}  # fmt: skip
        assert found == {buyer: (record, words[whose])
                         for buyer, (record, whose) in expected.items()}, campaign  # fmt: skip
