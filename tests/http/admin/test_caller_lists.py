"""Caller lists through the admin API (issue 23): lists and their entries, bulk JSON and CSV
uploads answered with a verdict per entry, all or nothing, audited; apply keeps what was
added here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from tests.conftest import write_config

LIST = "/admin/caller-lists"
FILE = """
[[caller_lists]]
id = "complaints"
kind = "block"
campaign = "auto"
entries = ["+1900", { number = "+13125550100", note = "complaint" }]
"""


@pytest.fixture
def applied(admin: TestClient, sqlite_url: str, tmp_path: Path) -> Callable[[], None]:
    """The file's list, applied as `rtbridge apply` would (on the demo's campaign "auto")."""

    def run() -> None:
        engine = open_database(sqlite_url)
        apply_file(engine, write_config(tmp_path, FILE))
        engine.dispose()

    run()
    return run


def test_lists_and_entries(admin: TestClient, applied: Callable[[], None]) -> None:
    made = admin.post(LIST, json={"id": "vip", "kind": "allow", "campaign": "auto",
                                  "entries": ["+1415"]})  # fmt: skip
    assert made.status_code == 201, made.text
    assert admin.post(LIST, json={"id": "vip", "kind": "allow"}).status_code == 409
    assert admin.post(LIST, json={"id": "x", "kind": "allow", "buyer": "nobody"}).status_code == 422
    assert [x["id"] for x in admin.get(LIST).json()["caller_lists"]] == ["complaints", "vip"]
    assert admin.patch(f"{LIST}/vip", json={"note": "only these"}).json()["note"] == "only these"
    added = admin.post(f"{LIST}/complaints/entries",
                       json=["+12025550100", {"prefix": "+1900555", "note": "n"}, "+1900"])  # fmt: skip
    assert [v["verdict"] for v in added.json()["verdicts"]] == ["added", "added", "unchanged"]
    page = admin.get(f"{LIST}/complaints/entries", params={"limit": 2}).json()
    assert [e["value"] for e in page["entries"]] == ["+12025550100", "+13125550100"]
    rest = admin.get(f"{LIST}/complaints/entries", params={"after": page["next_after"]}).json()
    assert [e["value"] for e in rest["entries"]] == ["+1900*", "+1900555*"]
    assert rest["next_after"] is None
    found = admin.get(f"{LIST}/complaints/entries", params={"value": "+1900"}).json()
    assert [e["source"] for e in found["entries"]] == ["file", "admin"]
    assert admin.delete(f"{LIST}/complaints/entries/%2B1900555%2A").status_code == 204
    assert admin.delete(f"{LIST}/complaints/entries/%2B1900555%2A").status_code == 404
    # a re-apply keeps what the API added
    applied()
    values = [e["value"] for e in admin.get(f"{LIST}/complaints/entries").json()["entries"]]
    assert values == ["+12025550100", "+13125550100", "+1900*"]
    audit = admin.get("/admin/audit").json()["entries"]
    assert any(a["resource"] == "caller-list/complaints/entries" for a in audit)
    assert admin.delete(f"{LIST}/vip").status_code == 204


def test_a_bad_json_entry_refuses_them_all(admin: TestClient, applied: Callable[[], None]) -> None:
    refused = admin.post(f"{LIST}/complaints/entries", json=["+12025550100", "12", "+0"])
    assert refused.status_code == 422
    verdicts = refused.json()["verdicts"]
    assert verdicts[0]["verdict"] == "valid"
    assert verdicts[1]["verdict"].startswith("invalid: value: not an E.164 number")
    assert verdicts[2]["verdict"].startswith("invalid")
    entries = admin.get(f"{LIST}/complaints/entries").json()["entries"]
    assert "+12025550100" not in [e["value"] for e in entries]


def test_csv_upload_verdict_per_line(admin: TestClient, applied: Callable[[], None]) -> None:
    csv_headers = {"Content-Type": "text/csv"}
    good = (
        "value,expires,note\n"
        "+12025550100,,\n"
        "'+13125550100,2030-01-01T00:00:00Z,complaint again\n"  # as an export guards it
        "+1900,,\n"
        "\n"
        "+1 (202) 555-0101,,typed by hand\n"
    )
    answer = admin.post(f"{LIST}/complaints/entries", content=good, headers=csv_headers)
    assert answer.status_code == 200, answer.text
    assert [(v["line"], v["verdict"]) for v in answer.json()["verdicts"]] == [
        (2, "added"), (3, "updated"), (4, "unchanged"), (6, "added")]  # fmt: skip
    bad = "+12025550199\nnot-a-number,,\n+12025550199\n+1202555019,yesterday,\n"
    refused = admin.post(f"{LIST}/complaints/entries", content=bad, headers=csv_headers)
    assert refused.status_code == 422
    verdicts = {v["line"]: v["verdict"] for v in refused.json()["verdicts"]}
    assert verdicts[1] == "valid"
    assert verdicts[2].startswith("invalid: value: ")
    assert verdicts[3] == "invalid: the same entry as 1"
    assert verdicts[4].startswith("invalid: expires: not an ISO 8601 time")
    entries = admin.get(f"{LIST}/complaints/entries", params={"value": "+12025550199"}).json()
    assert entries["entries"] == []  # nothing changed
    too_many = "".join(f"+1202{n:07d}\n" for n in range(200_001))
    assert admin.post(f"{LIST}/complaints/entries", content=too_many,
                      headers=csv_headers).status_code == 413  # fmt: skip
