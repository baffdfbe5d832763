"""docs/console.png is made by a command, not by hand: the command docs/admin.md gives,
run as written (to a temporary file), signs in to a demo console and writes the picture."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.console_shot import VIEWPORT

pytestmark = [pytest.mark.browser, pytest.mark.live]

ROOT = Path(__file__).resolve().parents[3]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_documented_command_writes_the_console_picture(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "admin.md").read_text()
    command = re.search(r"^\.venv/bin/python -m tests\.support\.console_shot$", doc, re.M)
    assert command is not None, "docs/admin.md no longer gives the command"
    out = tmp_path / "console.png"
    run = subprocess.run([sys.executable, "-m", "tests.support.console_shot", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    assert _png_size(out.read_bytes()) == (VIEWPORT["width"], VIEWPORT["height"])
    # the picture in the repository is one this command made (same size, same page)
    assert _png_size((ROOT / "docs" / "console.png").read_bytes()) == _png_size(out.read_bytes())
