"""Running the admin service layer (:mod:`rtbridge.admin`) from a request, for both front
doors that change the configuration: the JSON admin API and the operator console.

``request.state.admin`` is the actor (the admin token's name) that their guards set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.requests import Request

from rtbridge.admin.changes import read_session, write_session
from rtbridge.domain.errors import NotFound
from rtbridge.http.state import AppState
from rtbridge.numerals import as_int
from rtbridge.storage import listings
from rtbridge.storage.listings import Page

T = TypeVar("T")


def app_state(request: Request) -> AppState:
    state: AppState = request.state.app
    return state


def entry_id(request: Request) -> int:
    """The ``{entry}`` of an allowlist entry's path: its id, 404 for anything else. (Not
    Starlette's ``{entry:int}``: it reads any number of digits and ``int()`` raises past
    4300 of them, a 500.)"""
    text = str(request.path_params["entry"])
    value = as_int(text)
    if value is None:
        publisher = request.path_params.get("publisher")
        raise NotFound(f"no allowlist entry {text!r} for publisher {publisher!r}")
    return value


async def read(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    state = app_state(request)

    def work() -> T:
        with read_session(state.engine) as session:
            return fn(session, *args, **kwargs)

    return await state.run(work)


async def pages(
    request: Request, listing: Callable[..., Page], *, before: Any, **filters: Any
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every page of a keyset listing (:mod:`rtbridge.storage.listings`) from ``before`` on,
    ``MAX_PAGE`` rows at a time: what a CSV export streams, without holding it all."""
    while True:
        page = await read(request, listing, **filters, before=before, limit=listings.MAX_PAGE)
        yield page.rows
        if page.next_before is None:
            return
        before = page.next_before


async def write(request: Request, fn: Callable[..., T], **kwargs: Any) -> T:
    """One change in one transaction; then this process's catalog reloads at once (others
    see the bumped version within their recheck interval)."""
    state = app_state(request)
    actor: str = request.state.admin

    def work() -> T:
        with write_session(state.engine) as session:
            return fn(session, actor=actor, **kwargs)

    result = await state.run(work)
    state.catalog.invalidate()
    return result
