"""The publisher API's OpenAPI description is served at /openapi.json and lists exactly the
routes and methods the app serves (schemathesis fuzzes from it: test_fuzz_openapi.py)."""

from __future__ import annotations

from starlette.routing import Route
from starlette.testclient import TestClient

from rtbridge.http import health, publisher


def _served() -> set[tuple[str, str]]:
    served = set()
    for route in [*publisher.routes, *health.routes]:
        assert isinstance(route, Route)
        served |= {(route.path, m.lower()) for m in route.methods or () if m != "HEAD"}
    return served


def test_description_lists_exactly_the_served_routes(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert described == _served()


def test_errors_are_described_with_their_shape(client: TestClient) -> None:
    ping = client.get("/openapi.json").json()["paths"]["/rtbs.json"]["post"]
    assert {"200", "401", "403", "422", "503"} <= set(ping["responses"])
    assert ping["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    names = {p["name"] for p in ping["parameters"]}
    assert {"key", "caller_number", "inbound_number", "publisher_id", "source_id"} <= names
    # The admin API keeps its own description where it was.
    assert client.get("/admin/openapi.json").status_code == 401
