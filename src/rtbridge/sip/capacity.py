"""How many calls one agent carries, derived from the linked pjsua2 build.

Nobody should have to tune ``sip_config`` to get capacity: call slots default to all the
build has, bridges to what the slots allow, and the result is checked against everything
else that runs out — RTP ports, the ioqueue's socket table, the process's open-files
limit — so an agent that cannot hold what it admits refuses to start, saying which limit
and how to change it, instead of failing calls under load.

Per bridge: two pjsua call slots (publisher and buyer legs), two RTP/RTCP port pairs and
four sockets. A few slots stay free beyond the bridges: an INVITE holds a slot from the
moment pjsua sees it until it is answered, including the ones the agent refuses with 503,
and when no slot is free pjsua answers by itself before Python runs.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

from rtbridge.sip.agent_config import AgentConfig

# Sockets beyond the calls' RTP: SIP listeners, TCP/TLS connections, the database, logs.
_OTHER_SOCKETS = 256
# Refused INVITEs open RTP sockets too, and closed ones return to the ioqueue 500 ms later
# (PJ_IOQUEUE_KEY_FREE_DELAY): room for a burst of that many refusals in flight.
_REFUSAL_CHURN = 1024


class CapacityError(ValueError):
    """The configuration asks for more than the build or the machine can hold."""


@dataclass(frozen=True)
class Capacity:
    call_slots: int  # pjsua call slots asked for (UaConfig.maxCalls)
    bridges: int  # bridged calls admitted at once
    spare_slots: int  # slots beyond 2 x bridges, for INVITEs being answered or refused
    rtp_pairs: int  # RTP/RTCP port pairs in rtp_port_min..rtp_port_max
    sockets: int  # sockets the agent may hold at full load
    open_files: int  # the open-files limit it needs


def spare_slots(slots: int) -> int:
    """Slots kept out of bridges: 2 on tiny builds, 1/64 of the slots on large ones."""
    return max(2, slots // 64)


def plan(config: AgentConfig, *, build_slots: int, ioqueue_handles: int) -> Capacity:
    """Size the agent for ``config`` on a build with ``build_slots`` call slots."""
    slots = config.max_calls or build_slots
    if slots > build_slots:
        raise CapacityError(
            f"max_calls = {config.max_calls} but the linked pjsua2 has {build_slots} call slots "
            "(PJSUA_MAX_CALLS): lower max_calls, or raise it in pjproject/config_site.h and "
            "re-run scripts/install"
        )
    spare = spare_slots(slots)
    bridges = config.max_bridges or max(1, (slots - spare) // 2)
    if bridges * 2 > slots:
        raise CapacityError(
            f"max_bridges = {bridges} needs {bridges * 2} call slots; there are {slots}"
        )
    spare = slots - bridges * 2
    pairs = (config.rtp_port_max - config.rtp_port_min) // 2
    needed_pairs = 2 * bridges + spare
    if pairs < needed_pairs:
        raise CapacityError(
            f"rtp_port_min..rtp_port_max ({config.rtp_port_min}..{config.rtp_port_max}) holds "
            f"{pairs} RTP/RTCP port pairs; {bridges} bridges need {needed_pairs}: widen the "
            "range or lower max_bridges"
        )
    sockets = 4 * bridges + 2 * spare + _OTHER_SOCKETS
    if ioqueue_handles < _OTHER_SOCKETS + _REFUSAL_CHURN:
        raise CapacityError(
            f"the linked pjsua2's ioqueue holds {ioqueue_handles} sockets "
            "(PJ_IOQUEUE_MAX_HANDLES), too few to survive an INVITE burst: it is not "
            "rtbridge's build of pjproject; run scripts/install"
        )
    if sockets + _REFUSAL_CHURN > ioqueue_handles:
        raise CapacityError(
            f"{bridges} bridges need about {sockets + _REFUSAL_CHURN} sockets; the linked "
            f"pjsua2's ioqueue holds {ioqueue_handles} (PJ_IOQUEUE_MAX_HANDLES): lower "
            "max_bridges or rebuild with a larger PJ_IOQUEUE_MAX_HANDLES"
        )
    return Capacity(
        call_slots=slots,
        bridges=bridges,
        spare_slots=spare,
        rtp_pairs=pairs,
        sockets=sockets,
        open_files=sockets + _REFUSAL_CHURN,
    )


def ensure_open_files(needed: int) -> int:
    """Raise this process's soft open-files limit to ``needed`` (up to the hard limit).

    Distributions start services with a soft limit of 1024, which 250 bridges exhaust;
    the hard limit is usually far higher and raising the soft one needs no privilege.
    Returns the soft limit in force; raises when the hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise CapacityError(
                f"open-files limit {hard} is below the {needed} this agent needs: raise it "
                "(systemd LimitNOFILE=, ulimit -n) or lower max_bridges"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        soft = needed
    return int(soft)
