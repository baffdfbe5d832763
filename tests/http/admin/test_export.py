"""The Kamailio permissions address file: ``grp ip_addr mask port tag`` per line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session
from starlette.testclient import TestClient

from rtbridge.storage.models import AllowlistEntry


def test_kamailio_permissions_export(admin: TestClient) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    admin.post(
        "/admin/publishers", json={"id": "pub-2", "ips": ["203.0.113.0/24", "2001:db8::/32"]}
    )
    state = admin.app.state.rtbridge  # type: ignore[attr-defined]
    with Session(state.engine) as session:  # lapsed since it was added: not exported
        session.add(AllowlistEntry(publisher_id="pub-2", cidr="192.0.2.0/24", expires_at=past))
        session.commit()
    r = admin.get("/admin/export/kamailio-permissions")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    records = [line for line in r.text.splitlines() if line and not line.startswith("#")]
    assert records == [
        "1 127.0.0.1 32 0 pub-1",
        "1 [::1] 128 0 pub-1",
        "1 203.0.113.0 24 0 pub-2",
        "1 [2001:db8::] 32 0 pub-2",
        "2 198.51.100.10 32 0 trunk:carrier",
    ]
    for line in records:
        grp, _addr, mask, port, tag = line.split(" ")
        assert int(grp) >= 1 and 0 <= int(mask) <= 128 and port == "0" and tag
