"""Running the admin service layer (:mod:`rtbridge.admin`) from a request, for both front
doors that change the configuration: the JSON admin API and the operator console.

``request.state.admin`` is the actor (the admin token's name) that their guards set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from rtbridge.admin.changes import read_session, write_session
from rtbridge.http.state import AppState

T = TypeVar("T")


def app_state(request: Request) -> AppState:
    state: AppState = request.state.app
    return state


async def read(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    state = app_state(request)

    def work() -> T:
        with read_session(state.engine) as session:
            return fn(session, *args, **kwargs)

    return await state.run(work)


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
