"""The linked pjsua2: its version and the compile-time limits the agent is sized from.

pjproject fixes its tables at compile time (``PJSUA_MAX_CALLS``, ``PJ_IOQUEUE_MAX_HANDLES``
…) and silently caps what a program asks for beyond them. rtbridge builds its own pjsua2
(``pjproject/``), whose wheel carries ``pjsua2_rtbridge.BUILD`` describing the build. The
call-slot count is read from the library itself as well (``UaConfig()`` starts from
``pjsua_config_default``, i.e. ``PJSUA_MAX_CALLS``), so even a foreign pjsua2 is sized by
what it really holds rather than by what a file claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj

# What pjproject's select() ioqueue holds when a build does not say (the PyPI wheel's).
_DEFAULT_IOQUEUE_HANDLES = 64


@dataclass(frozen=True)
class Library:
    """What the linked pjsua2 can do; ``rtbridge_build`` is False for any other build."""

    pjproject: str  # e.g. "2.17"
    wheel: str  # e.g. "2.17+rtbridge.2"; "unknown" for a pjsua2 rtbridge did not build
    rtbridge_build: bool
    call_slots: int  # PJSUA_MAX_CALLS
    ioqueue_handles: int  # PJ_IOQUEUE_MAX_HANDLES (sockets, SIP and RTP together)
    ipv6: bool  # PJ_HAS_IPV6: IPv6 media (and accounts with ipv6Use)
    tls: bool
    srtp: bool
    source_sha256: str = ""
    limits: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """For logs, /health and /metrics."""
        return {
            "pjproject": self.pjproject,
            "wheel": self.wheel,
            "rtbridge_build": self.rtbridge_build,
            "call_slots": self.call_slots,
            "ioqueue_handles": self.ioqueue_handles,
            "ipv6": self.ipv6,
            "tls": self.tls,
            "srtp": self.srtp,
        }


def linked_library() -> Library:
    """Read the linked build (no Endpoint needed)."""
    slots = int(pj.UaConfig().maxCalls)
    try:
        import pjsua2_rtbridge  # written by pjproject/setup.py
    except ImportError:
        return Library(
            pjproject="unknown",
            wheel="unknown",
            rtbridge_build=False,
            call_slots=slots,
            ioqueue_handles=_DEFAULT_IOQUEUE_HANDLES,
            ipv6=False,
            tls=False,
            srtp=False,
        )
    build: dict[str, Any] = pjsua2_rtbridge.BUILD
    limits: dict[str, int] = dict(build.get("limits", {}))
    return Library(
        pjproject=str(build.get("pjproject", "unknown")),
        wheel=str(build.get("wheel_version", "unknown")),
        rtbridge_build=True,
        call_slots=slots,
        ioqueue_handles=limits.get("PJ_IOQUEUE_MAX_HANDLES", _DEFAULT_IOQUEUE_HANDLES),
        ipv6=bool(limits.get("PJ_HAS_IPV6", 0)),
        tls=bool(limits.get("PJSIP_HAS_TLS_TRANSPORT", 0)),
        srtp=bool(limits.get("PJMEDIA_HAS_SRTP", 0)),
        source_sha256=str(build.get("source_sha256", "")),
        limits=limits,
    )
