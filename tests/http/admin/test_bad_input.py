"""Issue 17: input that used to reach a 500 in the admin API — path ids and numbers written in
digits other than ASCII ones (``"²".isdigit()`` is true, ``int("²")`` raises), numbers too
long for a database column, JSON nested thousands deep — is refused with a 4xx naming the
problem, and no traceback is logged. Every route is walked from the app's table, so a new
one is covered too."""

from __future__ import annotations

import logging
import re

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from rtbridge.http.params import MAX_DEPTH

# "²" percent-encoded, Arabic-Indic three, fullwidth one, longer than any column, longer than
# int() reads from a string
ODD_IDS = ["%C2%B2", "%D9%A3", "%EF%BC%91", "9" * 30, "9" * 5000]
DEEP = b"[" * 30_000 + b"]" * 30_000
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
NESTED = f"body: JSON nested deeper than {MAX_DEPTH} levels"


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path template) of every admin route."""
    mount = next(r for r in client.app.routes if isinstance(r, Mount) and r.path == "/admin")  # type: ignore[attr-defined]
    out = []
    for route in mount.routes:
        assert isinstance(route, Route)
        out += [(m, "/admin" + route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]


@pytest.mark.parametrize("odd", ODD_IDS)
def test_odd_path_ids_are_4xx_on_every_route(
    admin: TestClient, odd: str, caplog: pytest.LogCaptureFixture
) -> None:
    for method, template in _routes(admin):
        if "{" not in template:
            continue
        path = re.sub(r"\{[^}]+\}", odd, template)
        r = admin.request(method, path, json={} if method in ("POST", "PATCH", "PUT") else None)
        assert 400 <= r.status_code < 500, (method, path[:80], r.status_code, r.text[:200])
        assert r.json()["error"], (method, path[:80])
    _no_tracebacks(caplog)


def test_the_webhook_routes_of_the_fuzz_finding_answer_404(admin: TestClient) -> None:
    """schemathesis found 500s here: ``/admin/webhooks/%C2%B2`` and its subpaths."""
    for method, path in [
        ("GET", "/admin/webhooks/%C2%B2"),
        ("PATCH", "/admin/webhooks/%C2%B2"),
        ("DELETE", "/admin/webhooks/%C2%B2"),
        ("GET", "/admin/webhooks/%C2%B2/deliveries"),
        ("POST", "/admin/webhooks/%C2%B2/deliveries/x/redeliver"),
    ]:
        r = admin.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == {"error": "no webhook '²'"}


@pytest.mark.parametrize("odd", ["%C2%B2", "%D9%A3", "9" * 30, "9" * 5000, "-1"])
def test_odd_numbers_in_queries_are_refused_by_name(admin: TestClient, odd: str) -> None:
    # (the deliveries' limit is read before the webhook is looked up)
    for path in ["/admin/audit", "/admin/rtbs", "/admin/calls", "/admin/bids",
                 "/admin/webhooks/1/deliveries"]:  # fmt: skip
        r = admin.get(f"{path}?limit={odd}")
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"].startswith("limit: "), r.text
    for path in ["/admin/rtbs", "/admin/calls", "/admin/bids"]:
        r = admin.get(f"{path}?cursor={odd}")
        assert r.status_code == 422 and r.json()["error"].startswith("cursor: "), r.text


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
def test_deeply_nested_json_is_refused_on_every_body(
    admin: TestClient, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    for method, template in _routes(admin):
        if method not in ("POST", "PATCH", "PUT"):
            continue
        path = template.replace("{publisher}", "pub-1").replace("{campaign}", "auto")
        path = path.replace("{buyer}", "acme").replace("{entry}", "1")
        path = re.sub(r"\{[^}]+\}", "x", path)
        r = admin.request(method, path, content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:200])
    for method, path in [
        ("POST", "/admin/publishers"),
        ("PATCH", "/admin/publishers/pub-1"),
        ("POST", "/admin/publishers/pub-1/ips"),
        ("POST", "/admin/buyers"),
        ("PATCH", "/admin/buyers/acme"),
        ("POST", "/admin/check"),
        ("POST", "/admin/keys"),
    ]:
        r = admin.request(method, path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json() == {"error": NESTED}, (method, path, r.text)
    _no_tracebacks(caplog)


def test_nesting_up_to_the_limit_is_read_as_usual(admin: TestClient) -> None:
    """32 levels are read (and refused by the resource's own rule, by name); brackets inside
    strings do not count."""
    deep_enough = (
        b'{"id": "pub-9", "note": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    )
    r = admin.post("/admin/publishers", content=deep_enough,
                   headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"].startswith("note: "), r.text
    quoted = b'{"id": "pub-9", "name": "' + b"[{" * 5000 + b'"}'
    r = admin.post("/admin/publishers", content=quoted,
                   headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"].startswith("name: "), r.text
