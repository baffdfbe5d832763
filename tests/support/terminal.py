"""``rtbridge --db URL ...`` run in the test process: ``cli.main`` with stdin given and stdout
and stderr captured, for the admin verbs' tests (quicker than a subprocess per command)."""

from __future__ import annotations

import getpass
import io
import re
import sys

import pytest

from rtbridge.cli import main as cli

ACTOR = f"cli:{getpass.getuser()}"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Terminal:
    """``rtbridge --db URL ...`` as a function: exit status, stdout, stderr."""

    def __init__(self, db: str, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
        self.db, self.capsys, self.monkeypatch = db, capsys, monkeypatch

    def __call__(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        try:
            status = cli.main(["--db", self.db, *args])
        except SystemExit as exc:  # argparse refusing a flag
            status = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return status, out, err

    def audit(self, *args: str) -> list[str]:
        status, out, err = self("audit", "--actor", ACTOR, *args)
        assert status == 0, err
        return out.splitlines()[1:]
