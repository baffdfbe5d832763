"""The admin round trips again, on PostgreSQL: the service layer is one code path for both
databases, so it runs on both (the same assertions, another engine)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from tests.conftest import ClientFactory
from tests.http.admin import test_audit as audit
from tests.http.admin import test_bid_settings as bidding
from tests.http.admin import test_bids as bids
from tests.http.admin import test_call_attempts as attempts
from tests.http.admin import test_export as export
from tests.http.admin import test_failover_settings as failover
from tests.http.admin import test_logs as listings
from tests.http.admin import test_recording_settings as recording
from tests.http.admin import test_routes as resources
from tests.support.admin import make_token

# Modules, not imported functions: pytest would collect those here a second time.
CASES: list[Callable[[TestClient], None]] = [
    resources.test_publisher_round_trip,
    resources.test_allowlist_round_trip,
    resources.test_credentials_set_rotate_remove,
    resources.test_campaign_buyer_did_round_trip,
    resources.test_key_round_trip_shows_the_key_once,
    resources.test_trunk_round_trip,
    failover.test_campaign_failover_created_changed_and_reset,
    failover.test_buyer_timeouts_created_changed_and_reset,
    audit.test_audit_filters,
    export.test_kamailio_permissions_export,
    listings.test_rtb_log_pages_newest_first_and_is_stable_under_inserts,
    listings.test_rtb_log_filters,
    listings.test_call_log_filters_and_pages,
    listings.test_csv_streams_every_row_in_keyset_pages,
    bidding.test_headers_kept_replaced_and_cleared,
    bidding.test_an_unchanged_patch_keeps_the_seal_and_the_version,
    bidding.test_turning_static_into_rtb_and_back_says_what_to_clear,
    bidding.test_campaign_auction_settings_created_changed_and_reset,
    bids.test_bids_newest_first_filtered,
    bids.test_bids_page_by_cursor_across_inserts,
    bids.test_bids_as_csv,
    bids.test_the_story_of_a_ping_holds_its_bids,
    recording.test_a_campaigns_record_and_a_buyers_override,
    recording.test_a_recording_notice_set_checked_overridden_and_cleared,
]


@pytest.fixture
def admin_pg(make_client: ClientFactory, postgres_url: str) -> TestClient:
    client = make_client(url=postgres_url)
    client.headers["Authorization"] = f"Bearer {make_token(postgres_url)}"
    return client


@pytest.mark.postgres
@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("test_") for c in CASES])
def test_admin_on_postgres(admin_pg: TestClient, case: Callable[[TestClient], None]) -> None:
    case(admin_pg)


@pytest.mark.postgres
def test_call_attempts_on_postgres(admin_pg: TestClient) -> None:
    attempts.test_the_call_log_lists_every_buyer_attempt(admin_pg)
