"""The ``rtbridge`` console script: serving, applying the configuration file, the admin
verbs (:mod:`rtbridge.cli.admin`, :mod:`~rtbridge.cli.offers`, :mod:`~rtbridge.cli.trunks`,
:mod:`~rtbridge.cli.caller_lists`, :mod:`~rtbridge.cli.webhooks`), and the demo's buyer."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rtbridge.cli import recording_options
from rtbridge.cli.limits import add_http_limits, http_limits, positive
from rtbridge.settings import DEFAULT_HTTP, Settings, parse_hostport

log = logging.getLogger("rtbridge")
DEMO_BUYER_SIP = "127.0.0.1:5070"  # where deploy/demo.toml's buyer `acme` is dialled


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings.from_env(db_url=args.db, **extra)


def _require_database(args: argparse.Namespace) -> None:
    """Only ``apply``, ``serve`` and ``sip`` create a database (``database="create"`` on
    their parsers). Any other command pointed at a SQLite file that is not there would
    create an empty one and answer as if the site had no data, so it stops and says where
    it looked instead."""
    from rtbridge.storage.database import missing_file

    url = _settings(args).db_url
    path = missing_file(url)
    if path is None:
        return
    origin = "--db" if args.db else "RTBRIDGE_DB" if "RTBRIDGE_DB" in os.environ else "the default"
    raise ValueError(
        f"no database at {path} ({url}, from {origin}); nothing was created. Point at yours "
        "with --db URL or RTBRIDGE_DB=URL; `rtbridge apply FILE` or `rtbridge serve` makes "
        "a new one"
    )


def cmd_apply(args: argparse.Namespace) -> int:
    from rtbridge.admin.apply import apply_file
    from rtbridge.config.schema import ConfigError
    from rtbridge.storage.database import open_database

    engine = open_database(_settings(args).db_url)
    try:
        report = apply_file(engine, Path(args.file), dry_run=args.dry_run, prune=args.prune)
    except ConfigError as exc:
        print(f"{args.file}: {len(exc.errors)} error(s), nothing changed:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2  # bad input, as for the admin verbs (admin_cli.EXIT_BAD_INPUT)
    finally:
        engine.dispose()
    for line in report.lines():
        print(line)
    prefix = "dry run, nothing written: " if args.dry_run else ""
    print(f"{prefix}{report.summary()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from rtbridge.http.app import create_app
    from rtbridge.http.server import serve
    from rtbridge.http.workers import MAX_WORKERS, WorkerShare, bind, supervise
    from rtbridge.logs import setup_logging
    from rtbridge.storage.database import open_database

    sip_off = args.sip == "off"
    settings = _settings(
        args,
        http=args.http,
        sip_enabled=not sip_off,
        sip=None if sip_off else args.sip,
        sip_config=args.sip_config,
        webhooks=args.webhooks == "on",
        bid_retention_days=args.bid_retention_days,
        access_log=args.access_log,
        auth_failures=args.auth_failures,
        auth_cooldown=args.auth_cooldown,
        **http_limits(args),
        **recording_options.settings_of(args),
    )
    host, port = settings.http_address
    setup_logging(args.log_level)
    if settings.sip:
        parse_hostport(settings.sip, what="--sip")
    if args.workers > MAX_WORKERS:
        raise ValueError(f"--workers: at most {MAX_WORKERS}, got {args.workers}")
    extra = {"http": f"{host}:{port}", "db": _redact(settings.db_url), "workers": args.workers}
    if args.workers == 1:
        app = create_app(settings)
        _tune_gc()
        log.info("serving the publisher API", extra=extra)
        serve(app, settings, log_level=args.log_level)
        return 0
    # Once, before the fork: the schema migrated and the site key made (N workers would race
    # for both), and a database that refuses said here, not by N workers.
    open_database(settings.db_url).dispose()
    sockets = [bind(host, port)]  # every worker accepts on it

    def run_worker(share: WorkerShare) -> None:
        app = create_app(settings, share=share)
        _tune_gc()
        serve(app, settings, log_level=args.log_level, sockets=sockets)

    log.info("serving the publisher API", extra=extra)
    return supervise(args.workers, run_worker)


def cmd_sip(args: argparse.Namespace) -> int:
    """The SIP agent alone (several can share one database behind a SIP load balancer).

    With ``--http``, /health and /metrics are served too (the agent then runs on its own
    thread under uvicorn, which turns SIGTERM into a clean stop)."""
    from rtbridge.logs import setup_logging
    from rtbridge.sip.b2bua.startup import build_agent
    from rtbridge.sip.lease import LeaseRefused
    from rtbridge.storage.catalog import CatalogCache
    from rtbridge.storage.database import open_database

    settings = _settings(
        args, sip=args.sip, sip_config=args.sip_config, http=args.http or DEFAULT_HTTP,
        access_log=args.access_log, **http_limits(args),
    )  # fmt: skip
    if args.access_log and not args.http:
        raise ValueError("--access-log logs HTTP requests: it needs --http HOST:PORT")
    setup_logging(args.log_level)
    if args.http:
        from rtbridge.http.app import create_app
        from rtbridge.http.server import serve

        host, port = settings.http_address
        log.info("serving SIP agent status", extra={"http": f"{host}:{port}"})
        serve(create_app(settings, api=False), settings, log_level=args.log_level)
        return 0
    engine = open_database(settings.db_url)
    try:
        agent = build_agent(
            settings, engine, CatalogCache(engine, recheck=settings.catalog_recheck)
        )
        agent.run()  # until SIGINT/SIGTERM
    except LeaseRefused as exc:  # another live agent runs under this agent_id
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def cmd_demo_buyer(args: argparse.Namespace) -> int:
    """A SIP buyer that answers and echoes, for the demo's first call (no database)."""
    from rtbridge.logs import setup_logging
    from rtbridge.sip.b2bua.demo_buyer import run

    host, port = parse_hostport(args.sip, what="--sip")
    if ":" in host:  # IPv6 media needs accounts bound per transport, as the agent has
        raise ValueError(f"--sip: the demo buyer answers on IPv4 only (e.g. {DEMO_BUYER_SIP})")
    setup_logging(args.log_level)
    try:
        run(host, port)
    except OSError as exc:  # the address taken or not ours
        print(f"rtbridge: demo-buyer: {exc}", file=sys.stderr)
        return 1
    return 0


def _tune_gc() -> None:
    """Move start-up objects out of the collector's sight and collect young objects less
    often: full collections were the largest latency spikes under load (p99 67 → 30 ms)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _version() -> str:
    """rtbridge's version and the pjsua2 build it would run the SIP agent on."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("rtbridge")
    except PackageNotFoundError:
        ours = "unknown"
    try:
        from pjsua2_rtbridge import BUILD  # the project's own pjsua2 build (pjproject/)

        sip = f"pjsua2 {BUILD['wheel_version']} (pjproject {BUILD['pjproject']})"
    except ImportError:
        sip = "pjsua2: not rtbridge's build (scripts/install builds it)"
    return f"rtbridge {ours}; {sip}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtbridge",
        description="Pay-per-call real-time bidding: the reservation API, the SIP agent that "
        "bridges reserved calls, and the tools network admins use.",
    )
    parser.add_argument("--version", action="version", version=_version())
    db_help = "database URL (default: $RTBRIDGE_DB or sqlite:///rtbridge.db)"
    parser.add_argument("--db", help=db_help)
    # Also accepted after the command (`rtbridge apply --db URL FILE`); SUPPRESS keeps an
    # absent flag there from overwriting one given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    access_log_help = (
        "log one JSON line per HTTP request (method, path, status, duration_ms, client; "
        "secrets redacted); off by default"
    )
    sip_config_help = (
        "SIP agent options file (default: $RTBRIDGE_SIP_CONFIG, else built-in defaults; "
        "sip_config/agent.toml documents every option)"
    )

    p = sub.add_parser(
        "apply",
        parents=[common],
        help="apply a configuration file (campaigns, buyers, publishers, keys) to the database",
        description="Validate the whole file, then apply it in one transaction and report "
        "what was created, updated and removed.",
    )
    p.add_argument("file", help="the TOML file (deploy/demo.toml is an example)")
    p.add_argument("--dry-run", action="store_true", help="validate and report, change nothing")
    p.add_argument(
        "--prune", action="store_true",
        help="also remove publishers, allowlist entries, SIP credentials and keys the file "
        "does not list that were made outside it (admin API, CLI, console); without it they "
        "are kept and reported",
    )  # fmt: skip
    p.set_defaults(func=cmd_apply, database="create")

    serve_help = "serve the publisher API (and the SIP agent)"
    p = sub.add_parser("serve", parents=[common], help=serve_help, description=serve_help)
    p.add_argument(
        "--http", default=DEFAULT_HTTP, help=f"HOST:PORT for HTTP (default {DEFAULT_HTTP})"
    )
    p.add_argument(
        "--sip", help="HOST:PORT for SIP, or 'off' (default: the agent file's, 0.0.0.0:5060)"
    )
    p.add_argument("--sip-config", help=sip_config_help)
    p.add_argument(
        "--webhooks", choices=["on", "off"], default="on",
        help="run the webhook sender in this process (default on; see `rtbridge webhooks run`)",
    )  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="least severe log lines written (default info)")  # fmt: skip
    p.add_argument("--access-log", action="store_true", help=access_log_help)
    p.add_argument("--bid-retention-days", type=positive(int), default=30, metavar="DAYS",
                   help="RTB buyers' bids are kept this long, then deleted (default 30)")  # fmt: skip
    p.add_argument("--workers", type=positive(int), default=1, metavar="N",
                   help="processes answering HTTP on the one port (default 1; one per core "
                   "on PostgreSQL). The first also runs the SIP agent, the expiry sweeper and "
                   "the webhook sender; the others only HTTP")  # fmt: skip
    d = Settings()
    p.add_argument("--auth-failures", type=positive(int, zero=True), default=d.auth_failures,
                   metavar="N",
                   help="failed authentications (admin tokens, console sign-ins, postback keys) "
                   f"one source address may make in {d.auth_window:g} s before every request of "
                   f"that kind from it gets 429; 0: no limit (default {d.auth_failures})")  # fmt: skip
    p.add_argument("--auth-cooldown", type=positive(float), default=d.auth_cooldown,
                   metavar="SECONDS", help="how long such a source gets 429 "
                   f"(default {d.auth_cooldown:g})")  # fmt: skip
    add_http_limits(p)
    recording_options.add_storage(p)
    recording_options.add_links(p)
    p.set_defaults(func=cmd_serve, database="create")

    sip_help = "run the SIP agent alone (several can share one database)"
    p = sub.add_parser("sip", parents=[common], help=sip_help, description=sip_help)
    p.add_argument("--sip", help="HOST:PORT for SIP (default: the agent file's, 0.0.0.0:5060)")
    p.add_argument("--sip-config", help=sip_config_help)
    p.add_argument("--http", help="HOST:PORT to serve /health and /metrics on (default: none)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="least severe log lines written (default info)")  # fmt: skip
    p.add_argument("--access-log", action="store_true", help=access_log_help)
    add_http_limits(p)
    p.set_defaults(func=cmd_sip, database="create")

    demo_help = "a SIP buyer for the demo: answers every call and echoes its audio back"
    p = sub.add_parser(
        "demo-buyer", help=demo_help,
        description=f"{demo_help}. A demo tool, not a buyer to deploy; it uses no database.",
    )  # fmt: skip
    p.add_argument("--sip", default=DEMO_BUYER_SIP,
                   help=f"HOST:PORT to answer on, UDP and TCP (default {DEMO_BUYER_SIP}, where "
                   "deploy/demo.toml's buyer is dialled)")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="least severe log lines written (default info)")  # fmt: skip
    p.set_defaults(func=cmd_demo_buyer, database="none")

    from rtbridge.cli import admin as admin_cli
    from rtbridge.cli import bids as admin_cli_bids
    from rtbridge.cli import caller_lists as admin_cli_caller_lists
    from rtbridge.cli import offers as admin_cli_offers
    from rtbridge.cli import trunks as admin_cli_trunks

    # admin-token, publishers, ips, credentials, check, audit, export
    admin_cli.register(sub, common)
    admin_cli_offers.register(sub, common)  # campaigns, buyers, dids, keys
    admin_cli_trunks.register(sub, common)  # trunks
    admin_cli_bids.register(sub, common)  # bids
    admin_cli_caller_lists.register(sub, common)  # caller-lists
    from rtbridge.cli.webhooks import register as register_webhook_verbs

    register_webhook_verbs(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "database", "existing") == "existing":
            _require_database(args)
        return int(args.func(args))
    except ValueError as exc:  # bad flag values (HOST:PORT, database URL): say so, exit 2
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 2
