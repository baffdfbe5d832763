"""SIP agent settings: sip_config/agent.toml documents every option and loads as defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rtbridge.sip.agent_config import (
    CONFIG_ENV,
    SUPPORTED_OPTIONS,
    AgentConfig,
    config_path,
    load_agent_config,
)

AGENT_TOML = Path(__file__).resolve().parents[2] / "sip_config" / "agent.toml"


def test_documented_file_is_the_defaults() -> None:
    assert load_agent_config(AGENT_TOML) == AgentConfig()


def test_every_option_documented_once() -> None:
    names = list(AgentConfig.model_fields)
    assert sorted(SUPPORTED_OPTIONS) == sorted(names)
    keys = re.findall(r"^([a-z_0-9]+) =", AGENT_TOML.read_text(), re.MULTILINE)
    assert sorted(keys) == sorted(names)


def test_interop_defaults() -> None:
    """MD5 first: SIPp 3.6 and many SBCs read only the first challenge (SPEC §4.2)."""
    config = AgentConfig()
    assert config.digest_algorithms[0] == "MD5"
    assert config.max_calls == 0 and config.max_bridges == 0  # sized from the build
    assert config.invite_rate > 0  # the per-source INVITE limit is on by default


def test_config_file_only_when_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--sip-config, else RTBRIDGE_SIP_CONFIG, else the built-in defaults: never a file that
    happens to sit in the current directory."""
    (tmp_path / "sip_config").mkdir()
    (tmp_path / "sip_config" / "agent.toml").write_text("[agent]\nport = 7777\n")
    monkeypatch.chdir(tmp_path)
    assert config_path(None, env={}) is None
    assert config_path(None, env={CONFIG_ENV: "/etc/a.toml"}) == Path("/etc/a.toml")
    assert config_path("b.toml", env={CONFIG_ENV: "/etc/a.toml"}) == Path("b.toml")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_agent_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent]\nport = \n")
    with pytest.raises(ValueError, match=r"bad\.toml: not valid TOML"):
        load_agent_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[agent]\ninvite_rat = 5\n")
    with pytest.raises(ValueError, match=r"typo\.toml: unknown SIP agent option.*invite_rat"):
        load_agent_config(typo)


@pytest.mark.parametrize(
    "options",
    [
        {"hosts": ("example.com",)},
        {"hosts": ()},
        {"port": 70000},
        {"udp": False, "tcp": False},
        {"rtp_port_min": 2000, "rtp_port_max": 1000},
        {"max_calls": 4, "max_bridges": 3},
        {"max_calls": 1},
        {"media_address": "::1"},
        {"media_address6": "127.0.0.1"},
        {"rate_limit_exempt": ("10.0.0.1/8",)},
        {"invite_rate": -1.0},
        {"tls": True},  # no certificate
        {"srtp": "required"},  # per publisher/buyer, not agent-wide
        {"udp": False, "tcp": False, "tls": False},
        {"clock_rate": 12345},
        {"retry_after": 0},
    ],
)
def test_unsafe_values_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AgentConfig(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"agent_id": "edge 1"}, "agent_id: up to 128"),  # a space
        ({"agent_id": "-edge"}, "agent_id: up to 128"),
        ({"agent_id": "e" * 129}, "agent_id: up to 128"),
        ({"agent_id": "edge\r\nX: 1"}, "agent_id: up to 128"),  # a log or header injection
        ({"takeover_after": 3.0}, "takeover_after: 0 .3 heartbeats. or seconds, 2 heartbeats"),
        ({"takeover_after": 5000.0}, "takeover_after"),
    ],
)
def test_lease_options_refused_with_their_name(options: dict[str, object], words: str) -> None:
    """An agent_id the lease, logs and SIP would carry badly, or a takeover sooner than two
    heartbeats (a live agent taken over between its beats): refused, saying which option."""
    with pytest.raises(ValueError, match=words):
        AgentConfig(**options)  # type: ignore[arg-type]
    assert AgentConfig(agent_id="edge-1.site:5071", takeover_after=4.0).lease_timeout == 4.0
    assert AgentConfig(heartbeat_interval=1.5).lease_timeout == 4.5  # 0: three heartbeats


def test_unknown_key_refused() -> None:
    with pytest.raises(ValueError, match="prot"):
        AgentConfig.from_mapping({"prot": 5060})


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"port": "5060"}, "port: Input should be a valid integer"),
        ({"tls": 1}, "tls: Input should be a valid boolean"),
        ({"hosts": ["example.com"]}, "hosts: 'example.com' is not an IP address"),
    ],
)
def test_toml_types_are_not_coerced(options: dict[str, object], words: str) -> None:
    """A quoted number or 1 for true is a mistake in the file, refused with the option's name."""
    with pytest.raises(ValueError) as info:
        AgentConfig.from_mapping(options)
    assert str(info.value) == words


def test_lists_from_toml_become_tuples() -> None:
    config = AgentConfig.from_mapping({"hosts": ["127.0.0.1", "::1"], "codecs": ["PCMU/8000"]})
    assert config.hosts == ("127.0.0.1", "::1") and config.codecs == ("PCMU/8000",)
