"""The recordings' flags: ``serve`` takes all four, ``webhooks run`` the links' two, and
each becomes its Settings field."""

from __future__ import annotations

from rtbridge.cli.main import build_parser
from rtbridge.cli.recording_options import settings_of


def test_serve_and_the_sender_take_their_flags() -> None:
    served = build_parser().parse_args(
        ["serve", "--recordings-dir", "/srv/rec", "--recording-retention-days", "30",
         "--public-url", "https://rtb.example.com", "--recording-link-days", "2"]
    )  # fmt: skip
    assert settings_of(served) == {
        "recordings_dir": "/srv/rec", "recording_retention_days": 30,
        "public_url": "https://rtb.example.com", "recording_link_days": 2,
    }  # fmt: skip
    defaults = settings_of(build_parser().parse_args(["serve"]))
    # unset: the file's [recordings] (stored by apply) decides, else the defaults
    assert defaults == {"recordings_dir": None, "recording_retention_days": None,
                        "public_url": None, "recording_link_days": 7}  # fmt: skip
    sender = build_parser().parse_args(["webhooks", "run", "--public-url", "https://h"])
    assert settings_of(sender) == {"public_url": "https://h", "recording_link_days": 7}
