"""Schemathesis against the live server, from the OpenAPI descriptions it serves (issue 11,
item 4): the publisher API (``/openapi.json``) and the admin API (``/openapi/admin.json``),
on a SQLite database holding the demo configuration. Derandomised, with a fixed number of
cases per operation and pass, so every run sends the same requests, all of them: the test
counts what it sent and what was answered, and fails on a case that got no answer, on a
5xx, and on an answer of the seeded pass that is not what the description declares."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
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

EXAMPLES = 25  # cases per operation and pass (publisher API: 8 operations, 349 cases, ~5 s)
ADMIN_EXAMPLES = 10  # the admin API has 65 operations: 1,950 cases, ~10 s
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


@dataclass
class Run:
    """What one API's fuzzing did: cases per (pass, operation), answers by status, and
    what went wrong (5xx, no answer, an answer the description does not declare)."""

    cases: Counter[tuple[str, str]] = field(default_factory=Counter)
    answered: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    unsatisfiable: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.cases.total()} cases, {self.answered.total()} answered, by status "
                f"{dict(sorted(self.statuses.items()))}")  # fmt: skip


def _fuzz(
    base: str, path: str, *, headers: dict[str, str], seed: dict[str, list[str]],
    conformance: bool = False, examples: int = EXAMPLES, inline: bool = False,
) -> Run:  # fmt: skip
    """Three passes over every operation: requests the description allows, requests that
    break it, and allowed requests on real data (``_seeded``), whose answers are also checked
    against the description when ``conformance``. Every case generated is sent."""
    document = httpx2.get(f"{base}{path}", headers=headers).json()
    passes = [
        ("positive", schemathesis.openapi.from_dict(document), GenerationMode.POSITIVE, False),
        ("negative", schemathesis.openapi.from_dict(document), GenerationMode.NEGATIVE, False),
        ("seeded", schemathesis.openapi.from_dict(_seeded(document, seed, inline=inline)),
         GenerationMode.POSITIVE, conformance),
    ]  # fmt: skip
    result = Run()
    with requests.Session() as session:
        session.headers.update(headers)

        def fuzz(name: str, operation: Any, mode: GenerationMode, check: bool) -> None:
            key = (name, operation.label)

            @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(mode))
            def run(case: Any) -> None:
                result.cases[key] += 1
                try:
                    response = case.call(base_url=base, session=session, timeout=10)
                except requests.RequestException as exc:
                    result.failures.append(f"no answer: {case.as_curl_command()}\n{exc}")
                    return
                result.answered[key] += 1
                result.statuses[response.status_code] += 1
                what = f"{response.status_code} {case.as_curl_command()}\n{response.text[:300]}"
                if response.status_code >= 500:
                    result.failures.append(what)
                elif check:  # the answer is one the description lists, in its shape
                    try:
                        case.validate_response(response, checks=CONFORMANCE)
                    except (AssertionError, BaseExceptionGroup) as exc:  # a FailureGroup
                        result.failures.append(f"{what}\n{exc}")

            try:
                run()
            except Unsatisfiable:  # nothing to break in an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label
                result.unsatisfiable.append(key)

        for name, schema, mode, check in passes:
            for found in schema.get_all_operations():
                fuzz(name, found.ok(), mode, check)
    print(f"{path}: {result.summary()}")
    return result


def test_publisher_api_never_answers_5xx(live: tuple[str, str, list[str]]) -> None:
    base, _, uuids = live
    seed = {"key": KEYS, "uuid": uuids, "caller_number": CALLERS,
            "inbound_number": ["+18005551234"]}  # fmt: skip
    run = _fuzz(base, "/openapi.json", headers={}, seed=seed, conformance=True, inline=True)
    assert not run.failures, "\n".join(run.failures)
    bare = ["GET /health", "GET /metrics", "GET /openapi.json"]  # no parameters: one request
    fewer = {(name, label): 1 for label in bare for name in ("positive", "seeded")}
    for label in ("GET /rtbs/{uuid}.json", "GET /rtbs/{uuid}/recording"):
        fewer["seeded", label] = len(KEYS) * len(uuids)  # key x uuid, nothing else
    _assert_all_ran(run, EXAMPLES, fewer, bare)
    assert len({label for _, label in run.cases}) == 8 and run.cases.total() == 349


def test_admin_api_never_answers_5xx(live: tuple[str, str, list[str]]) -> None:
    base, token, _ = live
    run = _fuzz(
        base, "/openapi/admin.json", headers={"Authorization": f"Bearer {token}"},
        seed={"publisher": ["pub-1"], "campaign": ["auto"]}, examples=ADMIN_EXAMPLES,
        conformance=True,
    )  # fmt: skip
    assert not run.failures, "\n".join(run.failures)
    _assert_all_ran(run, ADMIN_EXAMPLES, {}, [])
    assert len({label for _, label in run.cases}) == 65 and run.cases.total() == 1950


def _assert_all_ran(
    run: Run, examples: int, fewer: dict[tuple[str, str], int], unsatisfiable: list[str]
) -> None:
    """Every case was sent and answered (a 5xx is a failure above), and every operation of
    every pass ran ``examples`` cases — ``fewer`` where its every possible request is fewer
    than that (Hypothesis sends each once) — except the ``unsatisfiable`` ones' negative
    pass (nothing to break)."""
    assert run.answered == run.cases, run.summary()
    for key, count in sorted(run.cases.items()):
        assert count == fewer.get(key, examples), f"{key}: {count} cases"
    assert sorted(run.unsatisfiable) == [("negative", label) for label in unsatisfiable]
    operations = {label for _, label in run.cases}
    assert set(run.cases) == {(name, label) for label in operations
                              for name in ("positive", "negative", "seeded")
                              if (name, label) not in run.unsatisfiable}  # fmt: skip
