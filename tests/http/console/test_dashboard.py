"""The console opens on a dashboard (http/console/dashboard.py): today's figures from the
rollups, a chart drawn as SVG, per publisher, campaign and buyer, with caps in use and links
to the filtered logs. Through the real app on a real SQLite file."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from rtbridge.storage import calls
from tests.http.console.conftest import Console
from tests.support.demo import KEY_OPEN


def _kpis(page: str) -> dict[str, str]:
    block = page.split('id="totals"')[1].split("</dl>")[0]
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", block))


def test_the_dashboard_shows_todays_business(console: Console) -> None:
    state = console.client.app.state.rtbridge  # type: ignore[attr-defined]
    made = [console.client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": f"+1202555{i:04d}"}).json()
            for i in range(3)]  # fmt: skip
    now = state.reservations.clock()
    for uuid, talked in ((made[0]["uuid"], 200), (made[1]["uuid"], 10)):
        calls.claim(state.engine, uuid=uuid, publisher_id="pub-1", now=now, agent="a", source="t")
        calls.answered(state.engine, uuid=uuid, at=now)
        calls.ended(state.engine, uuid=uuid, answer_at=now, end_at=now + timedelta(seconds=talked),
                    publisher_code=200, buyer_code=200, hangup_by="buyer", duration=talked)  # fmt: skip
    page = console.client.get("/console/")
    assert page.status_code == 200 and "<h1>Dashboard" in page.text
    kpis = _kpis(page.text)
    assert (kpis["pings"], kpis["reserved"], kpis["calls"]) == ("3", "3", "2")
    assert (kpis["answer rate"], kpis["conversion rate"]) == ("100.0%", "50.0%")
    assert (kpis["payout"], kpis["revenue"], kpis["margin"]) == ("90.00", "90.00", "0.00")
    # the chart: a bar per hour of the day so far, each with its figures
    chart = page.text.split('<svg class="chart"')[1].split("</svg>")[0]
    assert "3 pings, 2 calls, 1 converted" in chart
    # buyers: the caps in use now, and a link to the buyer's calls over the same range
    buyers = page.text.split('id="buyers"')[1].split("</table>")[0]
    row = re.search(r'<a href="(/console/calls\?buyer=acme&amp;since=[^"]+)">acme</a>(.*?)</tr>',
                    buyers, re.S)  # fmt: skip
    assert row is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', row.group(2))[:2] == ["1 / 10", "3 / 500"]
    linked = console.client.get(html.unescape(row.group(1)))
    assert linked.status_code == 200 and made[0]["uuid"] in linked.text
    publishers = page.text.split('id="publishers"')[1].split("</table>")[0]
    link = re.search(r'<a href="(/console/rtb\?publisher=pub-1&amp;[^"]+)">pub-1</a>', publishers)
    assert link is not None
    assert made[2]["uuid"] in console.client.get(html.unescape(link.group(1))).text


def test_a_range_is_chosen_in_utc_and_a_bad_one_is_said(console: Console) -> None:
    console.client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550100"})
    old = console.client.get("/console/", params={"since": "2020-01-01 00:00",
                                                  "until": "2020-01-10 00:00"})  # fmt: skip
    assert old.status_code == 200 and _kpis(old.text)["pings"] == "0"
    assert "2020-01-09" in old.text  # past three days: a bar per day
    bad = console.client.get("/console/", params={"since": "yesterday"})
    assert bad.status_code == 422 and "not an ISO 8601 time in UTC" in bad.text
    assert _kpis(bad.text)["pings"] == "1"  # today's figures, with the error said
