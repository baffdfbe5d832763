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
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port


def find_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@dataclass
class Cluster:
    """A running throwaway cluster that a test may stop and start again (outage tests)."""

    url: str
    bindir: str
    data: str
    base: str
    options: str
    user: str | None

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_user([f"{self.bindir}/pg_ctl", "-D", self.data, *args], self.user),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        try:
            self._ctl("-o", self.options, "-w", "-l", f"{self.base}/log", "start")
        except subprocess.CalledProcessError as exc:  # say why: the server's log has it
            log = Path(self.base, "log")
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed ({exc.stderr!r}):\n{tail}") from None

    def stop(self, mode: str = "fast") -> None:
        """``fast``: roll back open transactions and close every connection, as a restart
        by an operator does; ``immediate``: like a crash."""
        self._ctl("-m", mode, "-w", "stop")


@contextmanager
def cluster() -> Iterator[str]:
    """Yield a ``postgresql://`` URL of a fresh database; remove everything afterwards."""
    with controlled_cluster() as running:
        yield running.url


@contextmanager
def controlled_cluster(*, unix_socket: bool = False) -> Iterator[Cluster]:
    """A fresh cluster and database, with its controls; removed afterwards.

    ``unix_socket``: no TCP listener, clients connect through the socket in the cluster's
    directory. For tests that stop and start the cluster: while it is down, its TCP port
    is free, and another test's free_port() may take it before the restart."""
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
    listen = "''" if unix_socket else "127.0.0.1"
    opts = f"-p {port} -k {base} -c listen_addresses={listen} -c fsync=off -c max_connections=300"
    url = f"postgresql://postgres@127.0.0.1:{port}/rtbridge"
    if unix_socket:
        url = f"postgresql://postgres@/rtbridge?host={base}&port={port}"
    running = Cluster(url, bindir, data, base, opts, user)
    running.start()
    try:
        subprocess.run(
            [
                f"{bindir}/createdb",
                "-h",
                base if unix_socket else "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "rtbridge",
            ],
            check=True,
            capture_output=True,
        )
        yield running
    finally:
        subprocess.run(
            _as_user([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], user),
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
