"""Issue 17: numbers written in other digits, or too long for ``int()``, reach the console's
forms, paths and page cursors as they reach the API: refused by name or not found, never a
500 page."""

from __future__ import annotations

import pytest

from tests.http.console.conftest import Console

ODD = ["²", "\u0663", "9" * 30, "9" * 5000]


@pytest.mark.parametrize("odd", ODD)
def test_odd_numbers_in_a_buyer_form_are_refused_by_field(console: Console, odd: str) -> None:
    for field in ("payout", "seconds", "concurrency", "priority", "ring_timeout",
                  "connect_timeout"):  # fmt: skip
        values = {"id": "beta", "destination": "sip:beta@buyer.example.net", "payout": "75",
                  "seconds": "90", field: odd}  # fmt: skip
        r = console.post("/console/campaigns/auto/buyers", **values)
        assert r.status_code == 422, (field, r.status_code, r.text[:300])
        assert f'id="err-{field}"' in r.text, field


@pytest.mark.parametrize("odd", ODD)
def test_odd_max_attempts_is_refused_by_field(console: Console, odd: str) -> None:
    r = console.post("/console/campaigns/auto/settings", max_attempts=odd)
    assert r.status_code == 422, r.text[:300]
    assert 'id="err-max_attempts"' in r.text


@pytest.mark.parametrize("odd", ODD)
def test_odd_key_ttl_is_refused_by_field(console: Console, odd: str) -> None:
    r = console.post("/console/publishers/pub-1/keys", campaign="auto", ttl_seconds=odd)
    assert r.status_code == 422, r.text[:300]
    assert 'id="err-ttl_seconds"' in r.text


@pytest.mark.parametrize("odd", ["%C2%B2", "%D9%A3", "9" * 30, "9" * 5000])
def test_odd_allowlist_entries_are_not_found(console: Console, odd: str) -> None:
    for path in [
        f"/console/publishers/pub-1/ips/{odd}",
        f"/console/publishers/pub-1/ips/{odd}/delete",
    ]:
        r = console.post(path, note="x")
        assert r.status_code == 404, (path[:60], r.status_code, r.text[:300])


@pytest.mark.parametrize("odd", ["%C2%B2", "%D9%A3", "9" * 30, "9" * 5000])
def test_odd_page_cursors_show_the_first_page(console: Console, odd: str) -> None:
    for path in ["/console/calls", "/console/audit"]:
        r = console.client.get(f"{path}?before={odd}")
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
