"""A throwaway PostgreSQL cluster on a free loopback port, from Debian's ``postgresql``.

``scripts/system-deps`` installs the package; this module only runs ``initdb``/``pg_ctl``.
As root the cluster runs as the ``postgres`` system user (PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.net import free_port


def find_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextmanager
def cluster() -> Iterator[str]:
    """Yield a ``postgresql://`` URL of a fresh database; remove everything afterwards."""
    bindir = find_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run scripts/system-deps")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        pwd.getpwnam(user)  # Debian's package creates it
    base = tempfile.mkdtemp(prefix="rtbridge-pg-")
    if user:
        shutil.chown(base, user)
    data = os.path.join(base, "data")
    port = free_port()
    subprocess.run(
        _as_user(
            [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], user
        ),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run(
        _as_user(
            [f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-w", "-l", f"{base}/log", "start"], user
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                f"{bindir}/createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "rtbridge",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/rtbridge"
    finally:
        subprocess.run(
            _as_user([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], user),
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
