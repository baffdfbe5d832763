"""One settings object built from CLI flags and the environment, passed to what needs it."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from rtbridge.numerals import as_int

DEFAULT_DB = "sqlite:///rtbridge.db"
DEFAULT_HTTP = "127.0.0.1:8080"
# Who sees versions and library builds in /health and /metrics without an admin token
# (http/health.py): this host only. A scraper elsewhere is a network to name on purpose.
DEFAULT_STATUS_NETWORKS = ("127.0.0.0/8", "::1/128")
DEFAULT_RETENTION_DAYS = 90  # recordings', when neither a flag nor [recordings] says

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_hostport(value: str, *, what: str) -> tuple[str, int]:
    """``HOST:PORT`` with IPv6 in brackets (``[::1]:5060``); refuses anything else clearly."""
    host, sep, port = value.rpartition(":")
    number = as_int(port)
    if not sep or number is None or number > 65535 or not host:
        raise ValueError(
            f"{what}: expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:5060), got {value!r}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{what}: put an IPv6 address in brackets, e.g. [{host}]:{port}")
    return host, number


def public_url(value: str) -> str:
    """``--public-url``: an http(s) origin, perhaps with a path prefix; no trailing slash."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https") or not rest.strip("/") or "?" in rest:
        raise ValueError(
            f"--public-url: expected http(s)://HOST[:PORT][/PREFIX], e.g. "
            f"https://rtb.example.com, got {value!r}"
        )
    return value.rstrip("/")


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB
    http: str = DEFAULT_HTTP
    sip_enabled: bool = True  # run the SIP agent in this process (serve --sip off: False)
    sip: str | None = None  # HOST:PORT overriding the agent file's hosts/port
    sip_config: str | None = None  # path; None: sip_config/agent.toml when present
    sweep_interval: float = 0.25  # seconds between expiry sweeps (each bounded, see expire_due)
    catalog_recheck: float = 1.0  # seconds between configuration version checks
    max_body: int = 64 * 1024
    webhooks: bool = True  # run the webhook sender in `serve` (serve --webhooks off: False)
    bid_retention_days: int = 30  # RTB buyers' bid rows are kept this long (storage/bids.py)
    # Call recordings (SPEC §4.8): where the files are (--recordings-dir or
    # $RTBRIDGE_RECORDINGS_DIR; None: the file's [recordings] directory, else the agent
    # file's recordings_directory, else its default: sip/recordings.py directory_of), how
    # many days they are kept (--recording-retention-days; None: the file's [recordings]
    # retention_days, else DEFAULT_RETENTION_DAYS: admin/recording_purge.py), and the signed
    # links webhooks carry (domain/recording_links.py)
    recordings_dir: str | None = None
    recording_retention_days: int | None = None
    recording_link_days: int = 7
    # The address clients reach this service at (--public-url or $RTBRIDGE_PUBLIC_URL, e.g.
    # https://rtb.example.com): absolute links in webhooks; None: links are paths alone
    public_url: str | None = None
    # $RTBRIDGE_WEBHOOK_KEY, else $RTBRIDGE_SITE_KEY: webhook signing secrets derive from it
    # (the site key's other uses read it where the database is opened: storage/sitekey.py)
    webhook_key: str | None = None
    access_log: bool = False  # one JSON line per HTTP request (--access-log; http/access_log.py)
    # $RTBRIDGE_STATUS_NETWORKS: sources shown versions and builds in /health and /metrics
    status_networks: tuple[str, ...] = DEFAULT_STATUS_NETWORKS

    # What one HTTP client can hold (http/server.py; docs/operations.md "Limits"):
    http_max_head: int = 16 * 1024  # bytes of a request line and headers; 431 beyond
    http_head_timeout: float = 10.0  # seconds to send a whole request head; 408 after
    http_keep_alive: int = 5  # seconds a kept-alive connection may idle between requests
    http_concurrency: int = 1000  # open connections or requests in progress; 503 beyond
    http_max_connections: int = 2000  # open connections; one more is closed at once
    # Failed authentications (admin tokens, console sign-ins, postback keys) per source
    # address (IPv6: per /64) in a sliding window; past it, 429 for the cooldown (http/lockout.py).
    auth_failures: int = 20  # 0: no limit
    auth_window: float = 60.0
    auth_cooldown: float = 60.0

    def __post_init__(self) -> None:
        self.status_nets  # noqa: B018 -- refuse a bad network when the settings are built
        positive = {
            "http_max_head": self.http_max_head, "http_head_timeout": self.http_head_timeout,
            "http_keep_alive": self.http_keep_alive, "http_concurrency": self.http_concurrency,
            "http_max_connections": self.http_max_connections, "auth_window": self.auth_window,
            "auth_cooldown": self.auth_cooldown,
            "recording_retention_days": self.recording_retention_days,
            "recording_link_days": self.recording_link_days,
        }  # fmt: skip
        for name, value in positive.items():
            if value is not None and not value > 0:
                raise ValueError(f"{name}: must be greater than 0, got {value}")
        if self.http_max_head < 1024:
            raise ValueError(f"http_max_head: at least 1024 bytes, got {self.http_max_head}")
        if self.auth_failures < 0:
            raise ValueError(f"auth_failures: 0 (no limit) or more, got {self.auth_failures}")

    @classmethod
    def from_env(cls, *, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        if overrides.get("db_url") is None:
            overrides["db_url"] = env.get("RTBRIDGE_DB", DEFAULT_DB)
        if overrides.get("webhook_key") is None:
            overrides["webhook_key"] = (
                env.get("RTBRIDGE_WEBHOOK_KEY") or env.get("RTBRIDGE_SITE_KEY") or None
            )
        for name, variable in (("recordings_dir", "RTBRIDGE_RECORDINGS_DIR"),
                               ("public_url", "RTBRIDGE_PUBLIC_URL")):  # fmt: skip
            if overrides.get(name) is None:
                overrides[name] = env.get(variable) or None
        if overrides.get("public_url"):
            overrides["public_url"] = public_url(overrides["public_url"])
        if overrides.get("status_networks") is None and "RTBRIDGE_STATUS_NETWORKS" in env:
            listed = env["RTBRIDGE_STATUS_NETWORKS"].replace(",", " ").split()
            overrides["status_networks"] = tuple(listed)
        return replace(cls(), **overrides)

    @cached_property
    def status_nets(self) -> tuple[Network, ...]:
        """``status_networks`` parsed (a bare address is its own /32 or /128)."""
        nets = []
        for value in self.status_networks:
            try:
                nets.append(ipaddress.ip_network(value.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"RTBRIDGE_STATUS_NETWORKS: {value!r} is not a network (e.g. 10.0.0.0/8, "
                    "2001:db8::/32 or one address; separate them with commas)"
                ) from None
        return tuple(nets)

    @property
    def http_address(self) -> tuple[str, int]:
        return parse_hostport(self.http, what="--http")
