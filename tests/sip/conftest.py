"""Every test that runs an agent fails on an error the agent logged (error_watch.py); a TLS
certificate for tests that need one."""

import subprocess
from pathlib import Path

import pytest

from tests.sip.error_watch import agent_errors  # noqa: F401


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1 (its own CA): (cert, key) PEM files."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)
