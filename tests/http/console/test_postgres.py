"""The console's pages again, on PostgreSQL: sessions, the service calls and the keyset
listings are one code path for both databases, so they run on both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ClientFactory
from tests.http.console import test_access as access
from tests.http.console import test_bidding as bidding
from tests.http.console import test_offers as offers
from tests.http.console import test_recording_settings as recording
from tests.http.console import test_watch as watch
from tests.http.console.conftest import Console, sign_in
from tests.support.admin import make_token

# Modules, not imported functions: pytest would collect those here a second time.
CASES: list[Callable[[Console], None]] = [
    access.test_allowlist_entry_with_expiry_and_note,
    access.test_credentials_policy_rotate_and_remove,
    access.test_keys_created_once_and_paused,
    access.test_check_page_answers_as_the_agent_would,
    offers.test_buyer_create_edit_delete,
    watch.test_rtb_log_pages_and_filters,
    watch.test_call_log_and_its_csv,
    watch.test_audit_pages,
    watch.test_agent_page_shows_each_agents_lease,
    bidding.test_an_rtb_buyer_through_its_form,
    bidding.test_a_reservations_page_lists_its_bids,
]


@pytest.fixture
def console_pg(make_client: ClientFactory, postgres_url: str) -> Console:
    client = make_client(url=postgres_url)
    token = make_token(postgres_url)
    return Console(client, sign_in(client, token), token)


@pytest.mark.postgres
@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("test_") for c in CASES])
def test_console_on_postgres(console_pg: Console, case: Callable[[Console], None]) -> None:
    case(console_pg)


@pytest.mark.postgres
def test_call_attempts_on_postgres(console_pg: Console) -> None:
    watch.test_a_calls_detail_shows_its_buyer_attempts_and_history(console_pg)


@pytest.mark.postgres
def test_recording_notices_on_postgres(console_pg: Console, tmp_path: Path) -> None:
    recording.test_a_recording_notice_on_the_campaign_and_the_buyer_forms(console_pg, tmp_path)
