"""Bad input gets a 4xx JSON error naming the problem, never a 5xx, and writes nothing."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from rtbridge.http.errors import HANDLERS
from rtbridge.storage.models import Reservation, ReservationEvent
from tests.support.demo import KEY_OPEN, KEY_STRICT


def _rows(client: TestClient) -> tuple[int, int]:
    engine = client.app.state.rtbridge.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(Reservation)).scalar_one(),
            conn.execute(select(func.count()).select_from(ReservationEvent)).scalar_one(),
        )


CASES = [
    pytest.param(
        {"params": {"key": KEY_OPEN, "caller_number": "call-me-maybe"}},
        422,
        "caller_number:",
        id="letters",
    ),
    pytest.param(
        {"params": {"key": KEY_OPEN, "caller_number": "1" * 5000}},
        422,
        "caller_number:",
        id="5000-digits",
    ),
    pytest.param(
        {"params": {"key": KEY_OPEN, "caller_number": "123"}}, 422, "caller_number:", id="too-short"
    ),
    pytest.param(
        {"params": {"key": KEY_OPEN, "inbound_number": "+0123"}},
        422,
        "inbound_number:",
        id="bad-inbound",
    ),
    pytest.param(
        {"content": b'{"key": ', "headers": {"content-type": "application/json"}},
        422,
        "body: not valid JSON",
        id="bad-json",
    ),
    pytest.param(
        {"content": b"[1, 2]", "headers": {"content-type": "application/json"}},
        422,
        "body: JSON must be an object",
        id="json-array",
    ),
    pytest.param(
        {"content": b'"text"', "headers": {"content-type": "application/json"}},
        422,
        "body: JSON must be an object",
        id="json-string",
    ),
    pytest.param(
        {"json": {"key": KEY_OPEN, "caller_number": {"a": 1}}},
        422,
        "caller_number: must be a string",
        id="json-object-caller",
    ),
    pytest.param(
        {"json": {"key": KEY_OPEN, "caller_number": True}},
        422,
        "caller_number: must be a string",
        id="json-bool-caller",
    ),
    pytest.param(
        {"json": {"key": KEY_OPEN, "caller_state": ["CA"]}},
        422,
        "tag caller_state: must be a string",
        id="json-list-tag",
    ),
    pytest.param({"json": {"key": [KEY_OPEN]}}, 422, "key: must be a string", id="json-list-key"),
    pytest.param(
        {"content": b"[" * 30_000 + b"]" * 30_000, "headers": {"content-type": "application/json"}},
        422,
        "body: JSON nested deeper than 32 levels",
        id="json-30000-deep",
    ),
    pytest.param(
        {"content": b'{"key": ' + b"[" * 33 + b"]" * 33 + b"}"},  # no content type: sniffed
        422,
        "body: JSON nested deeper than 32 levels",
        id="json-33-deep",
    ),
    # UTF-16, which json.loads reads too, with an escaped quote (a scan of the raw bytes
    # would see the brackets inside a string): refused by depth whatever the interpreter's
    # recursion limit (3.13's json.loads parses this one).
    pytest.param(
        {
            "content": ('["\\"", ' + "[" * 5000 + "]" * 5000 + ', ""]').encode("utf-16-le"),
            "headers": {"content-type": "application/json"},
        },
        422,
        "body: JSON nested deeper than 32 levels",
        id="json-utf16-deep",
    ),
    # ... and one that every interpreter's json.loads parses (40 levels).
    pytest.param(
        {
            "content": ('{"t": ["\\"", ' + "[" * 40 + "]" * 40 + ', ""]}').encode("utf-16-le"),
            "headers": {"content-type": "application/json"},
        },
        422,
        "body: JSON nested deeper than 32 levels",
        id="json-utf16-40-deep",
    ),
    pytest.param(
        {"content": b"\xff\xfe\x00", "headers": {"content-type": "application/json"}},
        422,
        "body: not valid JSON",
        id="json-utf16-truncated",
    ),
    pytest.param(
        {"params": {"key": KEY_OPEN, "bad tag!": "x"}}, 422, "tag 'bad tag!'", id="bad-tag-name"
    ),
    pytest.param(
        {"params": {"key": KEY_OPEN, **{f"t{i}": "x" for i in range(51)}}},
        422,
        "tags: at most 50",
        id="too-many-tags",
    ),
    pytest.param(
        {"params": {"key": KEY_OPEN, "zip": "9" * 300}},
        422,
        "tag zip: longer than 256",
        id="long-tag",
    ),
    pytest.param(
        {"params": {"key": "unknown-key-000000"}},
        401,
        "key: unknown postback key",
        id="unknown-key",
    ),
    pytest.param(
        {"params": {"caller_number": "12025550102"}}, 401, "key: missing postback key", id="no-key"
    ),
    pytest.param(
        {"params": {"key": KEY_STRICT}},
        422,
        "FAILED must include caller_number (string)",
        id="no-caller",
    ),
    pytest.param(
        {
            "content": b"x" * (64 * 1024 + 1),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        422,
        "body: larger than 65536 bytes",
        id="oversized",
    ),
    pytest.param(
        {"content": b"\xff\xfe", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        422,
        "body: form data is not UTF-8",
        id="non-utf8-form",
    ),
    pytest.param(
        {"content": b"<xml/>", "headers": {"content-type": "application/xml"}},
        422,
        "body: unsupported content type",
        id="xml",
    ),
    # python-multipart yields no fields for a truncated form: the key is then missing.
    pytest.param(
        {
            "content": b"--x\r\nbroken",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        401,
        "key: missing",
        id="broken-multipart",
    ),
]


@pytest.mark.parametrize(("request_kwargs", "status", "message"), CASES)
def test_bad_ping_is_refused_and_writes_nothing(
    client: TestClient, request_kwargs: dict, status: int, message: str
) -> None:
    before = _rows(client)
    r = client.post("/rtbs.json", **request_kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"].startswith(message), r.json()
    assert _rows(client) == before


def test_chunked_oversized_body_is_refused(client: TestClient) -> None:
    def chunks():  # no Content-Length: the cap must hold while streaming
        for _ in range(100):
            yield b"a" * 1024

    r = client.post(
        "/rtbs.json",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422 and "larger than" in r.json()["error"]


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/rtbs.json")
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}
    r = client.delete(f"/rtbs/{'0' * 36}.json")
    assert r.status_code == 405


def test_garbage_never_500s(client: TestClient) -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        ctype = rng.choice(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=zz",
                "",
            ]
        )
        r = client.post(
            f"/rtbs.json?key={KEY_OPEN}",
            content=blob,
            headers={"content-type": ctype} if ctype else {},
        )
        assert r.status_code < 500, (blob, ctype, r.text)


def test_brackets_inside_strings_do_not_count_as_nesting(client: TestClient) -> None:
    r = client.post("/rtbs.json", json={"key": KEY_OPEN, "caller_number": "+12025550102",
                                        "note": "[{" * 100})  # fmt: skip
    assert r.status_code == 200, r.text


def test_deep_input_is_one_log_line_not_a_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000
    r = client.post("/rtbs.json", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR]


def test_a_recursion_error_anywhere_is_a_422_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever input made Python's stack run out (JSON is refused before: see above), the
    answer is bad input and the log holds one line, not thousands of frames."""

    def nest(depth: int) -> int:
        return nest(depth + 1) + 1

    async def deep(_request: Request) -> Response:
        return Response(str(nest(0)))

    app = Starlette(routes=[Route("/deep", deep)], exception_handlers=HANDLERS)
    with TestClient(app) as plain:
        r = plain.get("/deep")
    assert r.status_code == 422 and r.json() == {"error": "input nested too deeply"}
    lines = [rec for rec in caplog.records if rec.name == "rtbridge.http"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "nested too deeply on GET /deep" in lines[0].getMessage()
