"""A recording notice's file is checked before it is named and before it plays
(sip/announcements.py): each bad file is refused with words that say what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rtbridge.sip.announcements import MAX_SECONDS, read_announcement
from rtbridge.sip.recordings import wav_header

SHIPPED = Path(__file__).resolve().parents[2] / "deploy/sounds/this-call-may-be-recorded.wav"


def _wav(path: Path, seconds: float, *, rate: int = 8000, channels: int = 1) -> Path:
    data = bytes(2 * channels * int(rate * seconds))
    path.write_bytes(wav_header(rate, channels, len(data)) + data)
    return path


def test_the_shipped_notice_is_a_notice() -> None:
    notice = read_announcement(SHIPPED)
    assert 1.0 < notice.seconds < 5.0 and notice.path == SHIPPED


def test_a_notice_at_another_rate_is_read_at_its_rate(tmp_path: Path) -> None:
    assert read_announcement(_wav(tmp_path / "wide.wav", 2.0, rate=16000)).seconds == 2.0


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: Path("relative.wav"), "must be absolute"),
        (lambda d: d / "missing.wav", "No such file"),
        (lambda d: d, "not a file"),
        (lambda d: (d / "text.wav").write_text("hello") and d / "text.wav", "not a WAV file"),
        (lambda d: _wav(d / "stereo.wav", 1.0, channels=2), "not mono PCM16"),
        (lambda d: _wav(d / "long.wav", MAX_SECONDS + 1), "s long"),
        (lambda d: _wav(d / "empty.wav", 0), "s long"),
        (lambda d: _wav(d / "huge.wav", 50, rate=48000), "bytes, more than"),
    ],
)  # fmt: skip
def test_a_bad_notice_is_refused_saying_why(
    tmp_path: Path, make: Callable[[Path], Path], words: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(ValueError, match=words) as refused:
        read_announcement(path)
    assert str(path) in str(refused.value)
