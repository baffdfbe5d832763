"""Schemathesis against the live server, from the OpenAPI descriptions it serves (issue 11,
item 4): the publisher API (``/openapi.json``) and the admin API (``/openapi/admin.json``),
on a SQLite database holding the demo configuration. Bounded and derandomised, so CI runs
the same requests every time in a few seconds. The bar: no response is ever 5xx."""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rtbridge.admin import tokens
from rtbridge.admin.apply import apply_file
from rtbridge.admin.changes import write_session
from rtbridge.storage.database import open_database
from tests.conftest import DEMO
from tests.support.demo import KEY_INBOUND, KEY_OPEN, KEY_STRICT
from tests.support.server import serve

pytestmark = pytest.mark.live

EXAMPLES = 25  # per operation and pass (publisher API: 7 operations, ~8 s)
ADMIN_EXAMPLES = 10  # the admin API has 33 operations: ~15-25 s
BUDGET = 45.0  # seconds per API at most, whatever the load of the machine: CI stays fast
KEYS = [KEY_OPEN, KEY_INBOUND, KEY_STRICT]
CALLERS = ["+12025550102", "12025550103", "+1 202-555-0104", "442071838750"]
CONFORMANCE = [status_code_conformance, content_type_conformance, response_headers_conformance,
               response_schema_conformance]  # fmt: skip


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[str]]]:
    """(base URL, admin token, uuids of a few reservations) of a live demo server."""
    path: Path = tmp_path_factory.mktemp("fuzz") / "rtbridge.db"
    url = f"sqlite:///{path}"
    engine = open_database(url)
    apply_file(engine, DEMO)
    with write_session(engine) as session:
        token = tokens.create(session, actor="test", name="fuzz")
    engine.dispose()
    # Negative cases send wrong keys and tokens by the hundred: with the lockout on, the
    # seeded pass would meet only 429s (the lockout has tests of its own: test_lockout.py).
    with serve(url, "--auth-failures", "0") as base:
        uuids = []
        for key in KEYS:
            r = httpx2.post(f"{base}/rtbs.json", data={"key": key, "caller_number": "+12025550100"})
            uuids.append(r.json().get("rtb", r.json())["uuid"])
        yield base, token, uuids


def _seeded(
    document: dict[str, Any], seed: dict[str, list[str]], *, inline: bool = False
) -> dict[str, Any]:
    """A copy where the parameters named in ``seed`` take only those values (real keys,
    uuids of real reservations, valid numbers) and tag names are ones the API accepts
    (``domain/ping.py`` says which): valid requests that reach the reservation code instead
    of stopping at 401, 404 or 422, every other parameter still generated. ``inline``: a
    body that is a $ref to components/schemas is seeded too, as a copy of its schema."""
    document = copy.deepcopy(document)
    components = document.get("components", {}).get("schemas", {})
    for item in document["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["name"] in seed:
                    param["schema"] = {"enum": seed[param["name"]]}
            for media in op.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                if inline and ref.startswith("#/components/schemas/"):
                    media["schema"] = copy.deepcopy(components[ref.rsplit("/", 1)[1]])
                body = media.get("schema", {})
                for name in list(body.get("properties", {})):
                    if name in seed:
                        body["properties"][name] = {"enum": seed[name]}
                if isinstance(body.get("additionalProperties"), dict):
                    body["propertyNames"] = {"pattern": "^[a-z_]{1,16}$"}
                    body["maxProperties"] = 8
    return document


def _fuzz(
    base: str, path: str, *, headers: dict[str, str], seed: dict[str, list[str]],
    conformance: bool = False, examples: int = EXAMPLES, inline: bool = False,
) -> list[str]:  # fmt: skip
    """Three passes over every operation: requests the description allows, requests that
    break it, and allowed requests on real data (``_seeded``), whose answers are also checked
    against the description when ``conformance``. Returns what went wrong."""
    document = httpx2.get(f"{base}{path}", headers=headers).json()
    passes = [
        (schemathesis.openapi.from_dict(document), GenerationMode.POSITIVE, False),
        (schemathesis.openapi.from_dict(document), GenerationMode.NEGATIVE, False),
        (schemathesis.openapi.from_dict(_seeded(document, seed, inline=inline)),
         GenerationMode.POSITIVE,
         conformance),
    ]  # fmt: skip
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    skipped = [0]
    deadline = time.monotonic() + BUDGET
    with requests.Session() as session:
        session.headers.update(headers)

        def fuzz(operation: Any, mode: GenerationMode, check: bool) -> None:
            @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(mode))
            def run(case: Any) -> None:
                if time.monotonic() > deadline:  # a loaded machine: stop asking, not waiting
                    skipped[0] += 1
                    return
                response = case.call(base_url=base, session=session, timeout=10)
                statuses[response.status_code] += 1
                what = f"{response.status_code} {case.as_curl_command()}\n{response.text[:300]}"
                if response.status_code >= 500:
                    failures.append(what)
                elif check:  # the answer is one the description lists, in its shape
                    try:
                        case.validate_response(response, checks=CONFORMANCE)
                    except (AssertionError, BaseExceptionGroup) as exc:  # a FailureGroup
                        failures.append(f"{what}\n{exc}")

            try:
                run()
            except Unsatisfiable:  # nothing to break in an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label

        for schema, mode, check in passes:
            for result in schema.get_all_operations():
                fuzz(result.ok(), mode, check)
    print(f"{path}: {statuses.total()} requests, by status {dict(sorted(statuses.items()))}, "
          f"{skipped[0]} cases left out past the time budget")  # fmt: skip
    return failures


def test_publisher_api_never_answers_5xx(live: tuple[str, str, list[str]]) -> None:
    base, _, uuids = live
    seed = {"key": KEYS, "uuid": uuids, "caller_number": CALLERS,
            "inbound_number": ["+18005551234"]}  # fmt: skip
    failures = _fuzz(base, "/openapi.json", headers={}, seed=seed, conformance=True, inline=True)
    assert not failures, "\n".join(failures)


def test_admin_api_never_answers_5xx(live: tuple[str, str, list[str]]) -> None:
    base, token, _ = live
    failures = _fuzz(
        base, "/openapi/admin.json", headers={"Authorization": f"Bearer {token}"},
        seed={"publisher": ["pub-1"], "campaign": ["auto"]}, examples=ADMIN_EXAMPLES,
        conformance=True,
    )  # fmt: skip
    assert not failures, "\n".join(failures)
