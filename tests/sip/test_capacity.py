"""Agent sizing from the linked build (SPEC §8): defaults need no tuning, and a
configuration the build or the machine cannot hold is refused with the limit named."""

from __future__ import annotations

import resource

import pytest

from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.capacity import CapacityError, ensure_open_files, plan, spare_slots

BUILD = {"build_slots": 1024, "ioqueue_handles": 8192}


def test_defaults_follow_the_build() -> None:
    capacity = plan(AgentConfig(), **BUILD)
    assert capacity.call_slots == 1024
    assert capacity.bridges == (1024 - 16) // 2 == 504
    assert capacity.spare_slots == 16
    assert capacity.rtp_pairs == 5000
    assert capacity.open_files > 4 * 504


def test_tiny_build_keeps_two_slots_to_refuse_with() -> None:
    """The PyPI wheel's 4 slots: one bridge, two slots left to answer 503 with."""
    assert spare_slots(4) == 2
    assert plan(AgentConfig(), build_slots=4, ioqueue_handles=8192).bridges == 1


def test_explicit_values() -> None:
    assert plan(AgentConfig(max_calls=100), **BUILD).bridges == 49
    assert plan(AgentConfig(max_bridges=10), **BUILD).bridges == 10
    assert plan(AgentConfig(max_calls=8, max_bridges=4), **BUILD).spare_slots == 0


@pytest.mark.parametrize(
    ("config", "build", "words"),
    [
        (AgentConfig(max_calls=2048), BUILD, "has 1024 call slots"),
        (AgentConfig(rtp_port_min=10000, rtp_port_max=10100), BUILD, "widen the range"),
        (AgentConfig(), {"build_slots": 1024, "ioqueue_handles": 2048}, "PJ_IOQUEUE_MAX_HANDLES"),
        (AgentConfig(), {"build_slots": 4, "ioqueue_handles": 64}, "not rtbridge's build"),
    ],
)
def test_refused_with_the_limit_named(
    config: AgentConfig, build: dict[str, int], words: str
) -> None:
    with pytest.raises(CapacityError, match=words):
        plan(config, **build)


def test_open_files_raised_to_what_is_needed() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert ensure_open_files(512) == 512
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 512
        assert ensure_open_files(100) == 512  # never lowered
        if hard != resource.RLIM_INFINITY:
            with pytest.raises(CapacityError, match="open-files limit"):
                ensure_open_files(hard + 1)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
