"""The HTTP limits as options of every command that serves HTTP (``serve``, ``sip --http``,
``webhooks run --http``), and the number type they share."""

from __future__ import annotations

import argparse
from typing import Any

from rtbridge.settings import Settings


def positive(kind: type[int] | type[float], *, least: float = 0, zero: bool = False) -> Any:
    """An argparse type: a number greater than 0 (or 0 too, with ``zero``), at least
    ``least``."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (value >= 0 if zero else value > 0):
            wanted = "0 or more" if zero else "greater than 0"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least:g}, got {text}")
        return value

    return parse


def add_http_limits(parser: argparse.ArgumentParser) -> None:
    """The flags bounding what one HTTP client can hold, on every command that serves HTTP
    (``serve``, ``sip --http``, ``webhooks run --http``); docs/operations.md "Limits"."""
    group = parser.add_argument_group("HTTP limits")

    def flag(name: str, kind: Any, metavar: str, text: str) -> None:
        default = getattr(Settings(), name.removeprefix("--").replace("-", "_"))
        group.add_argument(name, type=kind, metavar=metavar, default=default,
                           help=f"{text} (default {default:g})")  # fmt: skip

    flag("--http-max-head", positive(int, least=1024), "BYTES",
         "largest request line and headers together; larger: 431")  # fmt: skip
    flag("--http-head-timeout", positive(float), "SECONDS",
         "time a client has to send a whole request head; after it: 408 and closed")  # fmt: skip
    flag("--http-keep-alive", positive(int), "SECONDS",
         "idle time a kept-alive connection is held between requests")  # fmt: skip
    flag("--http-concurrency", positive(int), "N",
         "open connections (the request's own counted) or requests in progress at which "
         "requests get 503")  # fmt: skip
    flag("--http-max-connections", positive(int), "N",
         "open connections; one more is closed at once")  # fmt: skip


def http_limits(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`add_http_limits` flags as :class:`Settings` fields."""
    names = ("http_max_head", "http_head_timeout", "http_keep_alive", "http_concurrency",
             "http_max_connections")  # fmt: skip
    return {name: getattr(args, name) for name in names}
