"""``rtbridge apply`` and recordings (issue 24): a campaign's or buyer's
``record_announcement`` (a relative path is the file's directory's, stored absolute, read
as the agent would read it: a bad file refuses the whole file) and the ``[recordings]``
section, stored as settings rows; on both databases."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from rtbridge.admin.apply import apply_file
from rtbridge.config.schema import ConfigError
from rtbridge.storage.catalog import load_catalog
from rtbridge.storage.database import open_database
from rtbridge.storage.models import AuditEntry, Buyer, Campaign, Setting
from rtbridge.storage.recordings import StoredRecordings, stored_recordings
from tests.support.notices import SHIPPED, write_wav
from tests.support.terminal import Terminal

SITE = """
[[campaigns]]
id = "auto"
record = true
{campaign}

[[campaigns.buyers]]
id = "acme"
destination = "sip:queue@127.0.0.1:5070"
payout = 90.0
seconds = 120
{buyer}

[[campaigns.buyers]]
id = "zen"
destination = "sip:queue@127.0.0.1:5071"
payout = 90.0
seconds = 120
"""


def site(campaign: str = "", buyer: str = "", extra: str = "") -> str:
    return SITE.format(campaign=campaign, buyer=buyer) + extra


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    made = open_database(db_url)
    yield made
    made.dispose()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file's directory, with its notices in sounds/; the working directory elsewhere,
    so a path resolved against it would be wrong."""
    here = tmp_path / "etc" / "rtbridge"
    shutil.copy(SHIPPED, write_wav(here / "sounds" / "recorded.wav").parent / "shipped.wav")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return here


def write(folder: Path, text: str) -> Path:
    path = folder / "rtbridge.toml"
    path.write_text(text)
    return path


def state(engine: Engine) -> list[object]:
    """What apply may change here: campaigns, buyers, settings, the audit trail."""
    with Session(engine) as s:
        return [(m.__name__, sorted(map(repr, s.exec(select(m)))))
                for m in (Campaign, Buyer, Setting, AuditEntry)]  # fmt: skip


def notices(engine: Engine) -> dict[str, tuple[str | None, str]]:
    """Each buyer's stored notice and the one its calls' plans carry (the catalog's)."""
    with Session(engine) as s:
        stored = {b.id: b.record_announcement for b in s.exec(select(Buyer))}
    planned = {b.rule.id: b.announcement for c in load_catalog(engine).campaigns.values()
               for b in c.buyers}  # fmt: skip
    return {buyer: (stored[buyer], planned[buyer]) for buyer in sorted(stored)}


def test_a_relative_notice_is_the_files_directorys_stored_absolute(
    engine: Engine, folder: Path
) -> None:
    text = site('record_announcement = "sounds/shipped.wav"',
                'record_announcement = "./sounds/../sounds/recorded.wav"')  # fmt: skip
    report = apply_file(engine, write(folder, text))
    assert report.created == ["campaign auto", "buyer acme", "buyer zen"]
    shipped, own = str(folder / "sounds" / "shipped.wav"), str(folder / "sounds" / "recorded.wav")
    with Session(engine) as s:
        assert s.get(Campaign, "auto").record_announcement == shipped  # type: ignore[union-attr]
    # acme's own; zen's unset: the campaign's
    assert notices(engine) == {"acme": (own, own), "zen": (None, shipped)}
    assert apply_file(engine, write(folder, text)).lines() == ["no changes"]
    # the buyer's own removed from the file: back to the campaign's
    report = apply_file(engine, write(folder, site('record_announcement = "sounds/shipped.wav"')))
    assert report.updated == [f"buyer acme (record_announcement {own!r} -> None)"]
    assert notices(engine) == {"acme": (None, shipped), "zen": (None, shipped)}
    # not recorded: no notice in any plan, though one is stored
    apply_file(engine, write(folder, text.replace("record = true", "record = false")))
    assert notices(engine) == {"acme": (own, ""), "zen": (None, "")}


def test_a_bad_notice_names_its_campaign_or_buyer_and_changes_nothing(
    engine: Engine, folder: Path
) -> None:
    apply_file(engine, write(folder, site()))
    before = state(engine)
    write_wav(folder / "sounds" / "stereo.wav", channels=2)
    write_wav(folder / "sounds" / "long.wav", seconds=31)
    sounds = folder / "sounds"
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write(folder, site('record_announcement = "sounds/missing.wav"',
                                              'record_announcement = "sounds/stereo.wav"')))  # fmt: skip
    assert info.value.errors == [
        f"campaigns[0].record_announcement (campaign auto): {sounds}/missing.wav: No such file "
        "or directory",
        f"campaigns[0].buyers[0].record_announcement (buyer acme): {sounds}/stereo.wav: not "
        "mono PCM16 (format 1, 2 ch)",
    ]
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write(folder, site(buyer='record_announcement = "sounds/long.wav"')),
                   dry_run=True)  # fmt: skip
    assert info.value.errors == [
        f"campaigns[0].buyers[0].record_announcement (buyer acme): {sounds}/long.wav: 31.0 s "
        "long; a notice lasts 0 to 30 s"
    ]
    assert state(engine) == before


def test_the_recordings_section_is_stored_as_settings(engine: Engine, folder: Path) -> None:
    section = (
        '\n[recordings]\ndirectory = "../../var/recordings"\nretention_days = 30\nformat = "wav"\n'
    )
    directory = str(folder.parent.parent / "var" / "recordings")
    report = apply_file(engine, write(folder, site(extra=section)))
    assert report.created[:3] == [f"recordings.directory {directory}",
                                  "recordings.retention_days 30", "recordings.format wav"]  # fmt: skip
    assert stored_recordings(engine) == StoredRecordings(directory, 30, "wav")
    assert apply_file(engine, write(folder, site(extra=section))).lines() == ["no changes"]
    # left out: kept, as every section left out is
    assert apply_file(engine, write(folder, site())).lines() == ["no changes"]
    assert stored_recordings(engine) == StoredRecordings(directory, 30, "wav")
    # present: the whole truth; a key it leaves out goes back to its default
    changed = apply_file(engine, write(folder, site(extra="[recordings]\nretention_days = 7\n")))
    assert changed.lines() == [
        "updated recordings.retention_days (30 -> 7)",
        f"removed recordings.directory {directory}",
        "removed recordings.format wav",
    ]
    assert stored_recordings(engine) == StoredRecordings(None, 7, None)
    with Session(engine) as s:
        trail = [(e.action, e.resource) for e in s.exec(select(AuditEntry))
                 if e.resource.startswith("setting/")]  # fmt: skip
    assert ("update", "setting/recordings.retention_days") in trail
    assert ("delete", "setting/recordings.directory") in trail
    emptied = apply_file(engine, write(folder, site(extra="[recordings]\n")))
    assert emptied.lines() == ["removed recordings.retention_days 7"]
    assert stored_recordings(engine) == StoredRecordings()


def test_bad_recordings_values_change_nothing(engine: Engine, folder: Path) -> None:
    apply_file(engine, write(folder, site(extra="[recordings]\nretention_days = 30\n")))
    before = state(engine)
    for bad, error in [
        ('format = "mp3"', 'recordings.format: only "wav" (stereo PCM16: publisher left, buyer '
                           "right) is supported"),
        ("retention_days = 0", "recordings.retention_days: must be between 1 and 36500"),
        ("retention_days = 1.5", "recordings.retention_days: must be an integer"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as info:
            apply_file(engine, write(folder, site(extra=f"[recordings]\n{bad}\n")))
        assert info.value.errors == [error]
    assert state(engine) == before


def test_the_command_says_what_is_wrong_and_that_nothing_changed(
    db_url: str, folder: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    rtb = Terminal(db_url, capsys, monkeypatch)
    path = write(folder, site('record_announcement = "sounds/missing.wav"'))
    status, out, err = rtb("apply", str(path))
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        f"{path}: 1 error(s), nothing changed:",
        f"  campaigns[0].record_announcement (campaign auto): {folder}/sounds/missing.wav: No "
        "such file or directory",
    ]
    path = write(folder, site('record_announcement = "sounds/shipped.wav"',
                              extra='[recordings]\nformat = "wav"\n'))  # fmt: skip
    status, out, err = rtb("apply", "--dry-run", str(path))
    assert status == 0, err
    assert "created recordings.format wav" in out.splitlines()
