"""``rtbridge webhooks``: subscriptions from a terminal (same service layer and audit trail as
the admin API, actor ``cli:<unix user>``), and ``run``, the sender alone, for sites that
run it in its own process (``rtbridge serve --webhooks off`` elsewhere)."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from rtbridge.cli import recording_options
from rtbridge.cli.admin import guarded, read, table, write
from rtbridge.cli.limits import add_http_limits, http_limits
from rtbridge.settings import Settings
from rtbridge.webhooks import events, subscriptions


def _key() -> str | None:
    return Settings.from_env().webhook_key


def cmd_webhooks(args: argparse.Namespace) -> int:
    if args.action == "run":
        return _run(args)
    if args.action == "list":
        rows = read(args, subscriptions.list_webhooks)
        for r in rows:
            r["owner"] = (
                f"publisher/{r['publisher']}" if "publisher" in r else f"buyer/{r['buyer']}"
            )
            r["events"] = ",".join(r["events"])
        print(table(rows, ["id", "owner", "url", "events", "enabled"]))
    elif args.action == "add":
        raw: dict[str, Any] = {"url": args.url, args.owner_kind: args.owner}
        if args.events:
            raw["events"] = [e.strip() for e in args.events.split(",") if e.strip()]
        made = write(args, subscriptions.create_webhook, raw=raw, master=_key())
        print(f"webhook {made['id']} created; its signing secret (shown once): {made['secret']}")
    elif args.action == "remove":
        write(args, subscriptions.delete_webhook, webhook_id=args.id)
        print(f"webhook {args.id} removed")
    elif args.action == "rotate":
        made = write(args, subscriptions.rotate_secret, webhook_id=args.id, master=_key())
        print(f"webhook {made['id']}: new signing secret (shown once): {made['secret']}")
    elif args.action == "deliveries":
        found = read(args, lambda s: subscriptions.list_deliveries(
            s, args.id, status=args.status, limit=args.limit))  # fmt: skip
        print(table(found, ["id", "type", "reservation", "status", "attempts", "last_code",
                            "last_error", "created_at"]))  # fmt: skip
    elif args.action == "redeliver":
        write(args, subscriptions.redeliver, webhook_id=args.id, delivery_id=args.delivery)
        print(f"delivery {args.delivery} queued again")
    return 0


def _run(args: argparse.Namespace) -> int:
    """The sender in the foreground until SIGINT/SIGTERM."""
    from rtbridge.logs import setup_logging
    from rtbridge.storage import recording_links
    from rtbridge.storage.database import open_database
    from rtbridge.webhooks.sender import Sender, SenderOptions

    links = recording_options.settings_of(args)
    settings = Settings.from_env(db_url=getattr(args, "db", None), **links)
    setup_logging(args.log_level)
    if settings.webhook_key is None:
        print(
            "rtbridge: RTBRIDGE_SITE_KEY (or RTBRIDGE_WEBHOOK_KEY) is not set; deliveries will wait",
            file=sys.stderr,
        )
    options = SenderOptions(timeout=args.timeout, retry_min=args.retry_min, batch=args.batch,
                            posts=args.posts, duty=1.0)  # alone: no pings to yield to  # fmt: skip
    if args.http:  # /health and /metrics beside the sender; uvicorn turns SIGTERM into a stop
        from rtbridge.http.app import create_app
        from rtbridge.http.server import serve

        served = Settings.from_env(db_url=getattr(args, "db", None), http=args.http,
                                   access_log=args.access_log, sip_enabled=False,
                                   **http_limits(args), **links)  # fmt: skip
        serve(create_app(served, api=False, sender=options), served, log_level=args.log_level)
        return 0
    if args.access_log:
        raise ValueError("--access-log logs HTTP requests: it needs --http HOST:PORT")
    engine = open_database(settings.db_url)
    sender = Sender(engine, settings.webhook_key, options,
                    links=recording_links.for_site(engine, settings))  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sender.stop_soon())
    try:
        sender.run()
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``rtbridge webhooks ...`` (``cli.build_parser`` calls this)."""
    about = "publishers' and buyers' event webhooks: subscriptions, deliveries, the sender"
    parser = sub.add_parser("webhooks", parents=[common], help=about, description=about)
    parser.set_defaults(func=guarded(cmd_webhooks))
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, text: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
        return made

    action("list", "list webhooks (never their secrets)")
    p = action("add", "subscribe a URL to a publisher's or a buyer's events; prints the signing "
               "secret once")  # fmt: skip
    p.add_argument("owner_kind", choices=subscriptions.OWNERS,
                   help="whose events: a publisher's or a buyer's")  # fmt: skip
    p.add_argument("owner", help="the publisher's or buyer's id")
    p.add_argument("url", help="http:// or https:// URL that receives the signed POSTs")
    p.add_argument("--events", help=f"comma-separated, default all: {','.join(events.NAMES)}")
    action("remove", "remove a webhook and its deliveries").add_argument(
        "id", help="the webhook's id (webhooks list)"
    )
    action("rotate", "a new signing secret, printed once (the old one stops at once)").add_argument(
        "id", help="the webhook's id (webhooks list)"
    )
    p = action("deliveries", "a webhook's recent deliveries, newest first")
    p.add_argument("id", help="the webhook's id (webhooks list)")
    p.add_argument("--status", choices=subscriptions.STATUSES, help="only deliveries in this state")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p = action("redeliver", "send a delivery again now (same body and webhook-id)")
    p.add_argument("id", help="the webhook's id (webhooks list)")
    p.add_argument("delivery", help="the delivery's id (webhooks deliveries ID)")
    p = action("run", "run the sender alone, until SIGTERM (serve --webhooks off elsewhere)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per POST (default 5)")
    p.add_argument("--retry-min", type=float, default=5.0,
                   help="first retry delay in seconds, doubling up to an hour (default 5)")  # fmt: skip
    p.add_argument("--batch", type=int, default=64,
                   help="deliveries taken per round: the most sent twice if killed (default 64)")  # fmt: skip
    p.add_argument("--posts", type=int, default=8, help="POSTs in flight (default 8)")
    p.add_argument("--http", help="HOST:PORT to serve /health and /metrics on (default: none)")
    p.add_argument("--access-log", action="store_true",
                   help="one JSON line per HTTP request (needs --http)")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="least severe log lines written (default info)")  # fmt: skip
    add_http_limits(p)
    recording_options.add_links(p)
