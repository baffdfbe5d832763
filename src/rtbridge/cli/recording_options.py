"""The recordings' flags (issue 24), on every command that serves or links them: ``serve``
(all of them) and ``webhooks run`` (the links its ``recording.completed`` events carry).
Each reads its environment variable in ``Settings.from_env`` when not given."""

from __future__ import annotations

import argparse
from typing import Any

from rtbridge.cli.limits import positive
from rtbridge.settings import DEFAULT_RETENTION_DAYS, Settings


def add_links(parser: argparse.ArgumentParser) -> None:
    """``--public-url`` and ``--recording-link-days``: what a signed link looks like."""
    d = Settings()
    parser.add_argument("--public-url", metavar="URL",
                        help="the address clients reach this service at, e.g. "
                        "https://rtb.example.com (or RTBRIDGE_PUBLIC_URL): webhooks' recording "
                        "links start with it (default: none, links are paths alone)")  # fmt: skip
    parser.add_argument("--recording-link-days", type=positive(int), metavar="DAYS",
                        default=d.recording_link_days,
                        help="a recording.completed webhook's signed link works this long "
                        f"after the call's end (default {d.recording_link_days})")  # fmt: skip


def add_storage(parser: argparse.ArgumentParser) -> None:
    """``--recordings-dir`` and ``--recording-retention-days`` (``serve``)."""
    d = Settings()
    parser.add_argument("--recordings-dir", metavar="DIR",
                        help="where recordings are written, served and purged (or "
                        "RTBRIDGE_RECORDINGS_DIR; overrides the configuration file's "
                        "[recordings] directory and the agent file's recordings_directory; "
                        "default: those, in that order, else 'recordings' beside the SQLite "
                        "file, else in the working directory)")  # fmt: skip
    parser.add_argument("--recording-retention-days", type=positive(int), metavar="DAYS",
                        default=d.recording_retention_days,
                        help="completed recordings older than this are deleted, a batch at a "
                        "time, their call records saying purged (overrides the configuration "
                        "file's [recordings] retention_days; default: that, else "
                        f"{DEFAULT_RETENTION_DAYS})")  # fmt: skip


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given on this command as :class:`Settings` fields."""
    names = ("public_url", "recording_link_days", "recordings_dir", "recording_retention_days")
    return {name: getattr(args, name) for name in names if hasattr(args, name)}
