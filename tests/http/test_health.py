"""Who sees what in ``/health`` and ``/metrics`` (``http/health.py``, issue 17 item 6): the
status and the counters for anyone, versions and library builds only from
``status_networks`` or with an admin token — through the real app on a real SQLite file."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from starlette.testclient import TestClient

from rtbridge import __version__
from rtbridge.admin.apply import apply_file
from rtbridge.cli.main import main
from rtbridge.http.app import create_app
from rtbridge.settings import DEFAULT_STATUS_NETWORKS, Settings
from rtbridge.sip.status import AgentStatus
from rtbridge.storage.database import open_database
from tests.conftest import DEMO
from tests.support.admin import make_token
from tests.support.metrics import Exposition

LIBRARY = {"pjproject": "2.17", "wheel": "2.17+rtbridge.1", "rtbridge_build": True}
STRANGER = ("203.0.113.7", 40000)


@contextmanager
def serving(url: str, peer: tuple[str, int], **settings: object) -> Iterator[TestClient]:
    """The app over the demo file, as seen from ``peer`` (the TCP source the server sees)."""
    engine = open_database(url)
    apply_file(engine, DEMO)
    engine.dispose()
    options = Settings(db_url=url, sip_enabled=False, sweep_interval=3600, **settings)  # type: ignore[arg-type]
    with TestClient(create_app(options), client=peer) as client:
        yield client


def scrape(client: TestClient, **headers: str) -> Exposition:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200
    return Exposition(answer.text)


def agent_status(*, draining: bool = False) -> AgentStatus:
    return AgentStatus(port=5060, draining=draining, library=LIBRARY, call_slots=4,
                       bridge_capacity=1, invites=3)  # fmt: skip


def test_a_stranger_gets_the_status_without_versions(sqlite_url: str) -> None:
    with serving(sqlite_url, STRANGER) as client:
        answer = client.get("/health")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "database": "ok"}
        metrics = scrape(client)
    assert "rtbridge_build_info" not in metrics.families
    assert "rtbridge_reservations_live" in metrics.families  # the counters stay
    assert __version__ not in answer.text


def test_loopback_is_an_insider_by_default(sqlite_url: str) -> None:
    assert DEFAULT_STATUS_NETWORKS == ("127.0.0.0/8", "::1/128")
    for peer in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        with serving(sqlite_url, (peer, 40000)) as client:
            body = client.get("/health").json()
            assert body == {"status": "ok", "version": __version__, "database": "sqlite"}, peer
            info = scrape(client).value(
                "rtbridge_build_info", version=__version__, python=platform.python_version()
            )
            assert info == 1, peer


def test_a_configured_network_is_an_insider_and_loopback_no_longer(sqlite_url: str) -> None:
    networks = ("203.0.113.0/24", "2001:db8::/32")
    with serving(sqlite_url, STRANGER, status_networks=networks) as client:
        assert client.get("/health").json()["version"] == __version__
        assert "rtbridge_build_info" in scrape(client).families
    with serving(sqlite_url, ("2001:db8::5", 40000), status_networks=networks) as client:
        assert client.get("/health").json()["version"] == __version__
    with serving(sqlite_url, ("127.0.0.1", 40000), status_networks=networks) as client:
        assert "version" not in client.get("/health").json()
        assert "rtbridge_build_info" not in scrape(client).families


def test_an_admin_token_makes_anyone_an_insider(sqlite_url: str) -> None:
    with serving(sqlite_url, STRANGER, status_networks=()) as client:
        token = make_token(sqlite_url)
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/health", headers=bearer).json()["version"] == __version__
        assert (
            scrape(client, **bearer).value(
                "rtbridge_build_info", version=__version__, python=platform.python_version()
            )
            == 1
        )
        # a wrong or malformed token is no error here: the stranger's answer, status 200
        for header in (f"Bearer {token}x", "Basic abc", "Bearer"):
            wrong = client.get("/health", headers={"Authorization": header})
            assert wrong.status_code == 200 and wrong.json() == {"status": "ok", "database": "ok"}
            assert "rtbridge_build_info" not in scrape(client, Authorization=header).families


def test_the_sip_agent_shows_draining_to_strangers_and_its_build_to_insiders(
    sqlite_url: str,
) -> None:
    with serving(sqlite_url, STRANGER) as client:
        state = client.app.state.rtbridge  # type: ignore[attr-defined]
        state.sip = lambda: agent_status(draining=True)
        assert client.get("/health").json() == {
            "status": "ok", "database": "ok", "sip": {"draining": True}
        }  # fmt: skip
        public = scrape(client)
        assert public.value("rtbridge_sip_invites_total") == 3
        assert public.value("rtbridge_sip_draining") == 1
        assert "rtbridge_sip_build_info" not in public.families
        assert "rtbridge_build_info" not in public.families
        token = make_token(sqlite_url)
        bearer = {"Authorization": f"Bearer {token}"}
        full = client.get("/health", headers=bearer).json()
        assert full["sip"]["pjsua2"] == LIBRARY and full["sip"]["draining"] is True
        inside = scrape(client, **bearer)
        (build,) = inside.families["rtbridge_sip_build_info"].samples
        assert build.labels["pjproject"] == "2.17"
        (info,) = inside.families["rtbridge_build_info"].samples
        assert info.labels["pjproject"] == "2.17" and info.labels["version"] == __version__


def test_a_database_error_is_detailed_only_for_insiders(sqlite_url: str) -> None:
    """The driver's message names hosts and ports: a stranger reads only "error"."""
    dead = create_engine("postgresql+psycopg://rtb@127.0.0.1:1/none",
                         connect_args={"connect_timeout": 2})  # fmt: skip
    with serving(sqlite_url, STRANGER) as client:
        state = client.app.state.rtbridge  # type: ignore[attr-defined]
        real, state.engine = state.engine, dead
        try:
            stranger = client.get("/health")
            state.settings = Settings(db_url=sqlite_url, status_networks=(f"{STRANGER[0]}/32",))
            insider = client.get("/health")
        finally:
            state.engine = real
            dead.dispose()
    assert stranger.status_code == 503 and stranger.headers["retry-after"] == "1"
    assert stranger.json() == {"status": "error", "database": "error"}
    assert insider.status_code == 503 and "127.0.0.1" in insider.json()["database"]


def test_status_networks_from_the_environment() -> None:
    env = {"RTBRIDGE_STATUS_NETWORKS": "10.0.0.0/8, 192.0.2.7 2001:db8::/32"}
    settings = Settings.from_env(env=env)
    assert settings.status_networks == ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")
    assert [str(n) for n in settings.status_nets] == ["10.0.0.0/8", "192.0.2.7/32",
                                                      "2001:db8::/32"]  # fmt: skip
    assert Settings.from_env(env={"RTBRIDGE_STATUS_NETWORKS": ""}).status_nets == ()
    assert Settings.from_env(env={}).status_networks == DEFAULT_STATUS_NETWORKS
    with pytest.raises(ValueError, match="RTBRIDGE_STATUS_NETWORKS: 'lan' is not a network"):
        Settings.from_env(env={"RTBRIDGE_STATUS_NETWORKS": "10.0.0.0/8,lan"})


def test_a_bad_status_network_stops_serve_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("RTBRIDGE_STATUS_NETWORKS", "10.0.0.300/8")
    status = main(["--db", f"sqlite:///{tmp_path / 'x.db'}", "serve", "--sip", "off"])
    assert status == 2
    assert "RTBRIDGE_STATUS_NETWORKS: '10.0.0.300/8' is not a network" in capsys.readouterr().err
