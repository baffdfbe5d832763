"""The pure side of recordings (``sip/recordings.py``): where files go, a WAV part whose
header a crash never finished, the join, and a join that cannot write."""

from __future__ import annotations

import hashlib
import math
from array import array
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.settings import Settings
from rtbridge.sip.recordings import (
    directory_for,
    directory_of,
    discard_parts,
    interleave,
    join,
    leftover_parts,
    part_paths,
    prepare_directory,
    read_part,
    stereo_path,
    stored_file,
    wav_header,
)
from rtbridge.storage.database import open_database
from tests.conftest import write_config
from tests.support.tone import share_with, wav_channels, wav_samples

UUID = "0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30"


def unfinished_part(path: Path, samples: array[int]) -> None:
    """A part as pjmedia leaves it when the process dies: header sizes still 0."""
    path.write_bytes(wav_header(8000, 1, 0)[:4] + b"\0\0\0\0" + wav_header(8000, 1, 0)[8:40]
                     + b"\0\0\0\0" + samples.tobytes())  # fmt: skip


def tone_samples(freq: int, count: int) -> array[int]:
    return array("h", (int(8000 * math.sin(2 * math.pi * freq * n / 8000)) for n in range(count)))


def test_where_recordings_go() -> None:
    assert directory_for("/srv/rec", "sqlite:////var/lib/rtbridge/rtbridge.db") == Path("/srv/rec")
    assert directory_for("", "sqlite:////var/lib/rtbridge/rtbridge.db") == Path(
        "/var/lib/rtbridge/recordings")  # fmt: skip
    assert directory_for("", "postgresql://db/rtb") == Path.cwd() / "recordings"
    assert directory_for("", "sqlite:///:memory:") == Path.cwd() / "recordings"
    answered = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert stereo_path(UUID, answered) == f"2026/12/{UUID}.wav"


def test_one_answer_for_the_agent_and_the_http_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--recordings-dir, else the agent file's recordings_directory, else the default."""
    monkeypatch.delenv("RTBRIDGE_SIP_CONFIG", raising=False)
    db = f"sqlite:///{tmp_path / 'rtbridge.db'}"
    assert directory_of(Settings(db_url=db)) == tmp_path / "recordings"
    agent = tmp_path / "agent.toml"
    agent.write_text('[agent]\nrecordings_directory = "/srv/rec"\n')
    from_file = Settings(db_url=db, sip_config=str(agent))
    assert directory_of(from_file) == Path("/srv/rec")
    assert directory_of(from_file, "/srv/read") == Path("/srv/read")  # the agent's own reading
    flag = Settings.from_env(env={"RTBRIDGE_RECORDINGS_DIR": "/mnt/rec"}, db_url=db,
                             sip_config=str(agent))  # fmt: skip
    assert directory_of(flag) == Path("/mnt/rec") == directory_of(flag, "/srv/rec")


def test_the_files_recordings_section_comes_after_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database at hand: --recordings-dir (or its variable) first, then the
    configuration file's [recordings] directory as apply stored it, then the agent file's
    recordings_directory, then the default; without it (engine None) the file is not seen."""
    monkeypatch.delenv("RTBRIDGE_SIP_CONFIG", raising=False)
    db = f"sqlite:///{tmp_path / 'rtbridge.db'}"
    agent = tmp_path / "agent.toml"
    agent.write_text('[agent]\nrecordings_directory = "/srv/agent"\n')
    engine = open_database(db)
    try:
        default, from_agent = Settings(db_url=db), Settings(db_url=db, sip_config=str(agent))
        assert directory_of(default, engine=engine) == tmp_path / "recordings"
        assert directory_of(from_agent, engine=engine) == Path("/srv/agent")
        apply_file(engine, write_config(tmp_path, '[recordings]\ndirectory = "stored"\n'))
        assert directory_of(default, engine=engine) == tmp_path / "stored"
        assert directory_of(from_agent, engine=engine) == tmp_path / "stored"
        assert directory_of(from_agent, "/srv/read", engine=engine) == tmp_path / "stored"
        assert directory_of(from_agent) == Path("/srv/agent")  # no database asked
        flag = Settings.from_env(env={"RTBRIDGE_RECORDINGS_DIR": "/mnt/rec"}, db_url=db,
                                 sip_config=str(agent))  # fmt: skip
        assert directory_of(flag, engine=engine) == Path("/mnt/rec")
        # the section emptied: its directory gone, the agent's option again
        apply_file(engine, write_config(tmp_path, "[recordings]\n"))
        assert directory_of(from_agent, engine=engine) == Path("/srv/agent")
    finally:
        engine.dispose()


def test_public_url_is_an_origin() -> None:
    got = Settings.from_env(env={"RTBRIDGE_PUBLIC_URL": "https://rtb.example.com/api/"})
    assert got.public_url == "https://rtb.example.com/api"
    for bad in ("rtb.example.com", "ftp://h", "https://", "https://h/?x=1"):
        with pytest.raises(ValueError, match="--public-url"):
            Settings.from_env(env={}, public_url=bad)


def test_a_stored_path_stays_in_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / "2026" / "12").mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    assert stored_file(root, f"2026/12/{UUID}.wav") == root.resolve() / f"2026/12/{UUID}.wav"
    for outside in ("../x.wav", "/etc/passwd", ".", "", "link/x.wav", "2026/../../x.wav"):
        assert stored_file(root, outside) is None, outside


def test_the_directory_is_private_and_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    assert prepare_directory(tmp_path / "a" / "rec") is None
    assert (tmp_path / "a" / "rec").stat().st_mode & 0o777 == 0o700
    (tmp_path / "file").write_text("")
    assert "Not a directory" in (prepare_directory(tmp_path / "file" / "rec") or "")


def test_an_unfinished_header_is_read_from_the_file_size(tmp_path: Path) -> None:
    samples = array("h", range(-800, 800))
    unfinished_part(tmp_path / "x.wav", samples)
    part = read_part(tmp_path / "x.wav")
    assert (part.rate, part.samples, part.repaired) == (8000, samples, True)
    # a half-written last sample is dropped, not misread
    with (tmp_path / "x.wav").open("ab") as out:
        out.write(b"\x01")
    assert read_part(tmp_path / "x.wav").samples == samples


def test_interleave_pads_the_shorter_channel() -> None:
    assert interleave(array("h", [1, 2, 3]), array("h", [9])) == array("h", [1, 9, 2, 0, 3, 0])


def test_join_makes_a_stereo_file_and_keeps_the_parts_for_the_outcomes_writer(
    tmp_path: Path,
) -> None:
    left, right = part_paths(tmp_path, UUID)
    unfinished_part(left, tone_samples(440, 8000))
    unfinished_part(right, tone_samples(1000, 8000))
    outcome = join(tmp_path, UUID, f"2026/12/{UUID}.wav", close_wait=0)
    assert outcome.status == "completed" and outcome.seconds == 1.0
    data = (tmp_path / f"2026/12/{UUID}.wav").read_bytes()
    assert (outcome.size, outcome.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    rate, l_ch, r_ch = wav_channels(tmp_path / f"2026/12/{UUID}.wav")
    assert rate == 8000 and share_with(l_ch, 440) == 1.0 and share_with(r_ch, 1000) == 1.0
    assert left.exists() and right.exists(), "they go once the outcome is written"
    assert wav_samples(tmp_path / f"2026/12/{UUID}.wav") == 16000
    discard_parts(tmp_path, UUID)
    assert not left.exists() and not right.exists()


def test_a_join_that_cannot_write_keeps_the_parts(tmp_path: Path) -> None:
    left, right = part_paths(tmp_path, UUID)
    unfinished_part(left, array("h", [1] * 800))
    unfinished_part(right, array("h", [2] * 800))
    (tmp_path / "2026").write_text("")  # where the month's folder would go: no room
    outcome = join(tmp_path, UUID, f"2026/12/{UUID}.wav", close_wait=0)
    assert outcome.status == "failed" and outcome.error and "Not a directory" in outcome.error
    assert left.exists() and right.exists()
    assert set(leftover_parts(tmp_path)[UUID]) == {"left", "right"}


def test_a_part_that_is_not_a_wav_fails_the_join(tmp_path: Path) -> None:
    left, right = part_paths(tmp_path, UUID)
    left.write_bytes(b"garbage")
    unfinished_part(right, array("h", [2] * 800))
    outcome = join(tmp_path, UUID, f"2026/12/{UUID}.wav", close_wait=0)
    assert outcome.status == "failed" and "not a WAV file" in (outcome.error or "")


def test_a_finished_header_is_trusted(tmp_path: Path) -> None:
    samples = array("h", [5] * 100)
    riff = wav_header(8000, 1, 200)
    (tmp_path / "y.wav").write_bytes(riff + samples.tobytes())
    part = read_part(tmp_path / "y.wav")
    assert (part.samples, part.repaired) == (samples, False)
