"""Admin API fields as command-line options: ``payout`` is ``--payout``, ``daily_cap`` is
``--daily-cap``, and what they hold becomes the request body the service functions take.

The options only shape text into the body's types (``90`` a number, ``CA,NY`` a list); the
service functions judge the values, so a refused value gets the same words as from the admin
API or ``apply`` (``payout: must be >= 0``). Text that is not a number is passed on as text,
for the same reason: the service names the field. A path is made absolute against the working
directory, as the shell means it (the API takes absolute paths only)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rtbridge.domain.errors import InvalidInput

Kind = Literal["text", "integer", "number", "list", "filters", "headers", "flag", "path"]


@dataclass(frozen=True)
class Field:
    """One API field of a resource, as an option of its ``add`` and ``update`` actions."""

    name: str  # as the admin API and the configuration file spell it
    help: str
    kind: Kind = "text"
    required: bool = False  # on add
    resettable: bool = False  # update --reset NAME: back to its default (JSON null)
    metavar: str | None = None
    option: str | None = None  # when the flag is not the name's (--filter for filters)

    @property
    def flag(self) -> str:
        return self.option or "--" + self.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, fields: Sequence[Field], *, adding: bool) -> None:
    """The fields' options; on ``add`` the required ones are required, on ``update`` every
    one is optional and ``--reset FIELD`` clears the resettable ones."""
    for field in fields:
        kwargs: dict[str, Any] = {"dest": field.name, "help": field.help, "default": None}
        if field.kind == "flag":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.kind in ("list", "filters", "headers"):
            kwargs["action"] = "append"
            kwargs["metavar"] = field.metavar
        else:
            kwargs["metavar"] = field.metavar
        if adding and field.required:
            kwargs["required"] = True
        parser.add_argument(field.flag, **kwargs)
    resettable = [f.name for f in fields if f.resettable]
    if not adding and resettable:
        parser.add_argument(
            "--reset", action="append", default=[], choices=resettable, metavar="FIELD",
            help=f"set a field back to its default (repeatable): {', '.join(resettable)}",
        )  # fmt: skip


def body_of(args: argparse.Namespace, fields: Sequence[Field]) -> dict[str, Any]:
    """The request body the given options spell; options not given are left out."""
    body: dict[str, Any] = {}
    for field in fields:
        value = getattr(args, field.name, None)
        if value is not None:
            body[field.name] = _convert(field, value)
    flags = {field.name: field.flag for field in fields}
    for name in getattr(args, "reset", None) or ():
        if name in body:
            raise InvalidInput(f"{name}: give {flags[name]} or --reset {name}, not both")
        body[name] = None
    return body


def _convert(field: Field, value: Any) -> Any:
    if field.kind == "integer":
        return _integer(value)
    if field.kind == "number":
        number = _integer(value)
        if isinstance(number, str):
            try:
                return float(number)
            except ValueError:
                return number
        return number
    if field.kind == "list":
        return [item.strip() for text in value for item in text.split(",") if item.strip()]
    if field.kind == "filters":
        return _filters(value)
    if field.kind == "headers":
        return _headers(value)
    if field.kind == "path":  # a file on this host, as the shell means it: from here
        return os.path.abspath(value) if value else value
    return value


def _integer(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _filters(values: Sequence[str]) -> dict[str, list[str]]:
    """``--filter caller_state=CA,NY --filter source=web`` → ``{"caller_state": ["CA", "NY"],
    "source": ["web"]}``; a tag given twice gathers its values."""
    out: dict[str, list[str]] = {}
    for text in values:
        tag, sep, allowed = text.partition("=")
        items = [a.strip() for a in allowed.split(",") if a.strip()]
        if not sep or not tag.strip() or not items:
            raise InvalidInput(f"filters: expected TAG=VALUE[,VALUE...], got {text!r}")
        out.setdefault(tag.strip(), []).extend(items)
    return out


def _headers(values: Sequence[str]) -> dict[str, str]:
    """``--bid-header Authorization='Bearer x' --bid-header X-Seat=42`` → ``{"Authorization":
    "Bearer x", "X-Seat": "42"}``: split at the first ``=`` (a header name has none, a value
    may); the names and values are the schema's to judge."""
    out: dict[str, str] = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            # not echoed: what was typed may be the secret itself
            raise InvalidInput("bid_headers: expected NAME=VALUE (one had no name or no '=')")
        if name.strip() in out:
            raise InvalidInput(f"bid_headers: {name.strip()} given twice")
        out[name.strip()] = value.strip()
    return out
