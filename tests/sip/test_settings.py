"""SIP agent settings: sip_config/agent.toml documents every option and loads as defaults."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from rtbridge.sip.settings import SUPPORTED_OPTIONS, AgentConfig, load_agent_config

AGENT_TOML = Path(__file__).resolve().parents[2] / "sip_config" / "agent.toml"


def test_documented_file_is_the_defaults() -> None:
    assert load_agent_config(AGENT_TOML) == AgentConfig()


def test_every_option_documented_once() -> None:
    names = [f.name for f in dataclasses.fields(AgentConfig)]
    assert sorted(SUPPORTED_OPTIONS) == sorted(names)
    keys = re.findall(r"^([a-z_]+) =", AGENT_TOML.read_text(), re.MULTILINE)
    assert sorted(keys) == sorted(names)


def test_capacity_keeps_two_slots_free_for_503() -> None:
    assert AgentConfig().bridge_capacity == 1  # 4 wheel slots: 1 bridge + 2 to refuse with
    assert AgentConfig(max_calls=32).bridge_capacity == 15
    assert AgentConfig(max_calls=8, max_bridges=3).bridge_capacity == 3


@pytest.mark.parametrize(
    "options",
    [
        {"hosts": ("example.com",)},
        {"hosts": ()},
        {"port": 70000},
        {"udp": False, "tcp": False},
        {"rtp_port_min": 2000, "rtp_port_max": 1000},
        {"max_calls": 4, "max_bridges": 3},
        {"media_address": "::1"},
        {"clock_rate": 12345},
        {"retry_after": 0},
    ],
)
def test_unsafe_values_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AgentConfig(**options)  # type: ignore[arg-type]


def test_unknown_key_refused() -> None:
    with pytest.raises(ValueError, match="prot"):
        AgentConfig.from_mapping({"prot": 5060})
