"""Assemble the SIP agent for a deployment: its configuration (``--sip-config`` or
``$RTBRIDGE_SIP_CONFIG``, ``--sip`` and the database's SIP domain), the database-backed
router, the lease (crash recovery, takeovers of silent peers)."""

from __future__ import annotations

import logging
import os
import socket

from sqlalchemy import Engine

from rtbridge.logs import set_context
from rtbridge.settings import Settings, parse_hostport
from rtbridge.sip.agent_config import AgentConfig, config_path, load_agent_config
from rtbridge.sip.attester import Attester
from rtbridge.sip.b2bua.agent import Agent
from rtbridge.sip.lease import LeaseKeeper
from rtbridge.sip.leftover_legs import LeftoverLegs
from rtbridge.sip.proxy import networks
from rtbridge.sip.recording_repair import repair_leftovers
from rtbridge.sip.recordings import directory_of
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.sip.stir import Verifier
from rtbridge.storage.catalog import CatalogCache

log = logging.getLogger("rtbridge.sip")


def agent_config(settings: Settings, sip_domain: str) -> AgentConfig:
    """The file's options (built-in defaults when there is none), with ``--sip`` deciding
    where to listen and the database deciding the domain, as for the API's sip_address."""
    path = config_path(settings.sip_config)
    config = load_agent_config(path) if path is not None else AgentConfig()
    changes: dict[str, object] = {"domain": sip_domain}
    if settings.sip:
        host, port = parse_hostport(settings.sip, what="--sip")
        changes.update(hosts=(host,), port=port)
    return AgentConfig.model_validate({**dict(config), **changes})


def nonce_secret() -> bytes:
    """The key that signs digest nonces. Agents behind one load balancer should share it
    (``RTBRIDGE_NONCE_SECRET``) so a nonce from one is accepted by another; otherwise each
    process draws its own, which is fine when retries reach the same agent (Kamailio's
    dispatcher hashing the R-URI user does that). Never stored."""
    shared = os.environ.get("RTBRIDGE_NONCE_SECRET", "")
    if shared:
        if len(shared) < 16:
            raise ValueError("RTBRIDGE_NONCE_SECRET: at least 16 characters")
        return shared.encode()
    return os.urandom(32)


def agent_name(config: AgentConfig) -> str:
    """The agent's id in the site: ``agent_id``, else hostname:port."""
    return config.agent_id or f"{socket.gethostname()}:{config.port}"


def attester(config: AgentConfig) -> Attester:
    """STIR/SHAKEN as the agent's options say (``stir_*``)."""
    verifier = Verifier(
        roots_file=config.stir_ca_file or None, https_ca_file=config.stir_https_ca_file or None,
        fetch_timeout=config.stir_fetch_timeout, allowed_networks=config.stir_fetch_networks,
    )  # fmt: skip
    return Attester(verifier, verstat_sources=networks(config.stir_verstat_sources))


def build_agent(settings: Settings, engine: Engine, catalog: CatalogCache) -> Agent:
    """The agent, holding its lease (``sip/lease.py``): a previous run's open calls closed,
    their legs sent BYE in the background (the agent takes calls meanwhile). Raises
    ``LeaseRefused`` when a live agent holds the same id."""
    current = catalog.get()
    config = agent_config(settings, current.sip_domain)
    name = agent_name(config)
    set_context(agent=name)
    leftovers = LeftoverLegs.for_agent(config)
    lease = LeaseKeeper(engine, name, takeover_after=config.lease_timeout, leftovers=leftovers)
    router = ReservationRouter(
        engine, catalog, secret=nonce_secret(), agent_id=name,
        ring_timeout=config.ring_timeout, algorithms=config.digest_algorithms,
        retry_after=config.retry_after, lease=lease, attester=attester(config),
    )  # fmt: skip
    recordings = directory_of(settings, config.recordings_directory, engine=engine)
    # refuses a configuration pjsua2 cannot hold
    agent = Agent(config, router, lease=lease, recordings=recordings)
    recovery = lease.acquire()
    if recovery.closed:
        log.warning("closed calls a previous run left open",
                    extra={"calls": recovery.closed, "last_heartbeat": recovery.last_seen,
                           "legs_to_end": 2 * len(recovery.dialogs)})  # fmt: skip
    leftovers.end(recovery.dialogs, whose=f"{name} (previous run)")
    if (why := agent.recordings.check_directory()) is not None:
        log.warning("recordings directory not writable: recorded calls will fail to record",
                    extra={"directory": str(recordings), "error": why})  # fmt: skip
    repair_leftovers(recordings, engine)  # the previous run's calls are closed by now
    log.info("SIP agent configured", extra={"epoch": lease.epoch, "hosts": list(config.hosts),
                                            "port": config.port, "bridges": agent.capacity.bridges,
                                            "takeover_after": config.lease_timeout})  # fmt: skip
    return agent
