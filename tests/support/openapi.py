"""OpenAPI checks shared by the admin, publisher and webhook tests: find the documented
operation of a concrete request, and check a real answer against what it declares."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs


def operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The documented operation a concrete path belongs to."""
    for template, item in doc["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in item:
            return item[method.lower()]  # type: ignore[no-any-return]
    raise AssertionError(f"{method} {path} is not documented")


def conforms(doc: dict[str, Any], response: Any) -> None:
    """The answer's status is declared for its operation, and its JSON body matches the
    declared schema (jsonschema_rs, with the document's components)."""
    request = response.request
    op = operation(doc, request.method, request.url.path)
    declared = op["responses"].get(str(response.status_code))
    assert declared is not None, f"{request.method} {request.url.path}: {response.status_code}"
    media = declared.get("content", {})
    if response.status_code == 204:
        assert not media and not response.content
        return
    schema = media["application/json"]["schema"]
    validator = jsonschema_rs.validator_for({**schema, "components": doc["components"]})
    errors = [e.message for e in validator.iter_errors(response.json())]
    assert not errors, f"{request.method} {request.url.path} {response.status_code}: {errors}"
