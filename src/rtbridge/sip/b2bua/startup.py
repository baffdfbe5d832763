"""Assemble the SIP agent for a deployment: its configuration (``--sip-config`` or
``$RTBRIDGE_SIP_CONFIG``, ``--sip`` and the database's SIP domain), the database-backed
router, crash recovery."""

from __future__ import annotations

import logging
import os
import socket

from sqlalchemy import Engine

from rtbridge.settings import Settings, parse_hostport
from rtbridge.sip.agent_config import AgentConfig, config_path, load_agent_config
from rtbridge.sip.b2bua.agent import Agent
from rtbridge.sip.dialogs import Dialog, end_legs
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.timestamps import utcnow

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


def build_agent(settings: Settings, engine: Engine, catalog: CatalogCache) -> Agent:
    current = catalog.get()
    config = agent_config(settings, current.sip_domain)
    agent_id = f"{socket.gethostname()}:{config.port}"
    router = ReservationRouter(
        engine, catalog, secret=nonce_secret(), agent_id=agent_id,
        ring_timeout=config.ring_timeout, algorithms=config.digest_algorithms,
        retry_after=config.retry_after,
    )  # fmt: skip
    agent = Agent(config, router)  # refuses a configuration the linked pjsua2 cannot hold
    recovery = calls.recover(engine, agent=agent_id, now=utcnow())
    if recovery.closed:
        log.warning("closed calls a previous run left open",
                    extra={"agent": agent_id, "calls": recovery.closed,
                           "last_heartbeat": recovery.last_seen, "legs_to_end": len(recovery.dialogs)})  # fmt: skip
    legs = [Dialog.from_json(leg) for call in recovery.dialogs for leg in call.values()]
    if legs:  # before the agent binds its port: the BYEs go out from it (dialogs.end_legs)
        answers = end_legs(legs, hosts=config.hosts, port=config.port)
        log.warning("sent BYE on the legs a previous run left up",
                    extra={"agent": agent_id, "legs": len(legs),
                           "answered": sum(code is not None for code in answers.values())})  # fmt: skip
    log.info("SIP agent configured", extra={"agent": agent_id, "hosts": list(config.hosts), "port": config.port,
                                            "bridges": agent.capacity.bridges})  # fmt: skip
    return agent
