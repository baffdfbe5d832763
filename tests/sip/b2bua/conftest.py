"""Fixtures for the agent's tests: an agent on free loopback ports, SIPp reaped after
each test (helpers and the scripted router are in support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.b2bua.agent import Agent
from tests.sip.b2bua.support import AgentFactory, ScriptedRouter, _spawned
from tests.sip.error_watch import ErrorWatch
from tests.sip.sipp import sipp_binary
from tests.support.net import free_port


@pytest.fixture(scope="session")
def sipp() -> str:
    path = sipp_binary()
    if path is None:
        pytest.fail("sipp not installed (Debian package sip-tester); scripts/ installs it")
    return path


@pytest.fixture
def make_agent(sipp: str, agent_errors: ErrorWatch) -> Iterator[AgentFactory]:
    """Start an agent on free loopback ports; stopped (libDestroy) at teardown, after which
    any error it logged fails the test (``agent_errors``).

    One pjsua2 Endpoint exists per process, so each test gets its own agent in turn.
    """
    agents: list[Agent] = []

    def make(
        router: ScriptedRouter | None = None, **overrides: object
    ) -> tuple[Agent, ScriptedRouter]:
        router = router or ScriptedRouter()
        rtp = free_port(count=1)
        options: dict[str, object] = {
            "hosts": ("127.0.0.1", "::1"),
            "port": 0,
            "media_address": "127.0.0.1",
            "media_address6": "::1",
            "rtp_port_min": rtp,
            "rtp_port_max": rtp + 40,
            "max_calls": 16,  # 7 bridges: what 20 RTP port pairs hold
            "drain_timeout": 2.0,
        }
        options.update(overrides)
        agent = Agent(AgentConfig(**options), router)  # type: ignore[arg-type]
        agent.start()
        agents.append(agent)
        return agent, router

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture(autouse=True)
def _reap_sipp() -> Iterator[None]:
    yield
    while _spawned:
        _spawned.pop().kill()
