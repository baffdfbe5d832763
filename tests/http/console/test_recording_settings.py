"""``record`` in the console: a box on the campaign's settings, a choice on the buyer's
form (the campaign's, yes, no); ``record_announcement``, a text field on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.http.console.conftest import Console, notice_of
from tests.support.notices import write_wav

TICKS = {f"failover-{k}": "on" for k in ("no-answer", "busy", "rejected", "unreachable")}
ACME = {"destination": "sip:queue@127.0.0.1:5070", "payout": "90", "seconds": "120",
        "priority": "1", "weight": "1", "srtp": "off"}  # fmt: skip


def _api(console: Console, path: str) -> Any:
    auth = {"Authorization": f"Bearer {console.token}"}
    return console.client.get(path, headers=auth).json()


def test_record_on_the_campaign_and_the_buyer_forms(console: Console) -> None:
    saved = console.post("/console/campaigns/auto/settings", **TICKS, max_attempts="3",
                         record="on")  # fmt: skip
    assert saved.status_code == 303 and notice_of(saved) == (
        "Saved campaign auto: record no → yes.")  # fmt: skip
    assert _api(console, "/admin/campaigns/auto")["record"] is True
    page = console.client.get("/console/campaigns").text
    form = page[page.index('id="failover-auto"') :].split("</form>")[0]
    assert 'name="record" checked' in form
    assert console.post("/console/buyers/acme", **ACME, record="no").status_code == 303
    assert _api(console, "/admin/buyers/acme")["record"] is False
    assert '<option value="no" selected>' in console.client.get("/console/buyers/acme").text
    assert console.post("/console/buyers/acme", **ACME, record="").status_code == 303
    assert _api(console, "/admin/buyers/acme")["record"] is None
    unticked = console.post("/console/campaigns/auto/settings", **TICKS, max_attempts="3")
    assert unticked.status_code == 303 and _api(console, "/admin/campaigns/auto")["record"] is False


def test_a_recording_notice_on_the_campaign_and_the_buyer_forms(
    console: Console, tmp_path: Path
) -> None:
    """A text field on both forms: the path saved, a bad one refused beside the field with
    read_announcement's words (what was typed kept), empty clears it (the buyer's: back to
    the campaign's)."""
    notice = write_wav(tmp_path / "notice.wav")
    stereo = write_wav(tmp_path / "stereo.wav", channels=2)
    saved = console.post("/console/campaigns/auto/settings", **TICKS, max_attempts="3",
                         record="on", record_announcement=str(notice))  # fmt: skip
    assert saved.status_code == 303 and notice_of(saved) == (
        f"Saved campaign auto: record announcement none → {notice}; record no → yes.")  # fmt: skip
    assert _api(console, "/admin/campaigns/auto")["record_announcement"] == str(notice)
    page = console.client.get("/console/campaigns").text
    form = page[page.index('id="failover-auto"') :].split("</form>")[0]
    assert f'name="record_announcement" value="{notice}"' in form
    refused = console.post("/console/campaigns/auto/settings", **TICKS, max_attempts="3",
                           record="on", record_announcement=str(stereo))  # fmt: skip
    assert refused.status_code == 422
    form = refused.text[refused.text.index('id="failover-auto"') :].split("</form>")[0]
    assert f'name="record_announcement" value="{stereo}"' in form
    assert (f'id="err-record_announcement">{stereo}: not mono PCM16 (format 1, 2 ch)</small>'
            in form)  # fmt: skip
    assert _api(console, "/admin/campaigns/auto")["record_announcement"] == str(notice)

    assert console.post("/console/buyers/acme", **ACME, record="yes",
                        record_announcement=str(notice)).status_code == 303  # fmt: skip
    assert _api(console, "/admin/buyers/acme")["record_announcement"] == str(notice)
    assert f'name="record_announcement" value="{notice}"' in console.client.get(
        "/console/buyers/acme").text  # fmt: skip
    refused = console.post("/console/buyers/acme", **ACME, record_announcement="notice.wav")
    assert refused.status_code == 422
    assert ('id="err-record_announcement">notice.wav: an announcement&#39;s path must be '
            "absolute</small>") in refused.text  # fmt: skip
    assert console.post("/console/buyers/acme", **ACME, record="yes",
                        record_announcement="").status_code == 303  # fmt: skip
    assert _api(console, "/admin/buyers/acme")["record_announcement"] is None
    cleared = console.post("/console/campaigns/auto/settings", **TICKS, max_attempts="3",
                           record_announcement="")  # fmt: skip
    assert cleared.status_code == 303
    assert _api(console, "/admin/campaigns/auto")["record_announcement"] is None
