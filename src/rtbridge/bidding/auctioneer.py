"""The auction's asking half (SPEC §3.5): before a ping of a campaign with RTB buyers joins
its batch, every one of them that could take the call is asked for a bid, all at once, and
the ping waits for the answers until the campaign's ``bid_deadline_ms`` — never longer. The
answers ride on the ping (``PingRequest.bids``) into its transaction, where the auction's
choosing half weighs them with the static buyers' prices under the caps
(``storage/reservations.py``, ``domain/selection.choose_by_price``) and writes every
answer as a ``bid`` row.

Asked: the campaign's RTB buyers whose filters and hours admit the call. Caps are not known
here (they are read under the campaign lock): a capped buyer may be asked and then lose with
the cap as the reason. Nothing a buyer answers — slowness, errors, nonsense — reaches the
publisher as anything but a lost or missing bid."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from rtbridge.bidding.client import BidClient, BidError, BidTimeout
from rtbridge.bidding.destinations import refusal
from rtbridge.bidding.formats import Bid, BidRequest, NoBid, read_answer, request_body
from rtbridge.domain import bids
from rtbridge.domain.bids import BidAnswer
from rtbridge.domain.ping import PingRequest
from rtbridge.domain.selection import Usage, ineligibility
from rtbridge.storage.catalog import BuyerInfo, CatalogCache
from rtbridge.storage.sealed import BID_HEADERS, SealError, unseal_json
from rtbridge.storage.uuids import uuid7

log = logging.getLogger("rtbridge.bidding")
_NONE = Usage()
# Counts each answer (buyer id, outcome) and observes each answer's latency (buyer, seconds)
Count = Callable[[str, str], None]
Observe = Callable[[str, float], None]


class Auctioneer:
    def __init__(
        self, catalog: CatalogCache, clock: Callable[[], datetime], *,
        count: Count | None = None, observe: Observe | None = None,
        client: BidClient | None = None,
    ) -> None:  # fmt: skip
        self._catalog = catalog
        self._clock = clock
        self._count = count or (lambda _buyer, _outcome: None)
        self._observe = observe or (lambda _buyer, _seconds: None)
        self.client = client or BidClient()
        self._headers: dict[str, Mapping[str, str] | None] = {}  # sealed -> opened

    async def prepare(self, req: PingRequest) -> PingRequest:
        """``req`` with its reservation's uuid and its bids, when its campaign has RTB
        buyers; else ``req`` itself (and a ping the storage will refuse is not auctioned)."""
        catalog = self._catalog.get()
        key = catalog.key(req.key)
        if key is None or key.paused:
            return req
        campaign = catalog.campaigns.get(key.campaign_id)
        if campaign is None or not campaign.bidders:
            return req
        if req.caller_number is None and not key.allow_missing_caller_number:
            return req
        now = self._clock()
        asked = [b for b in campaign.bidders if ineligibility(b.rule, _NONE, req.tags, now) is None]
        uuid = uuid7()
        if not asked:
            return replace(req, uuid=uuid, bids={})
        deadline_ms = campaign.auction.deadline_ms
        question = BidRequest(uuid, campaign.id, key.publisher_id, req.caller_number,
                              req.inbound_number, dict(req.tags), deadline_ms)  # fmt: skip
        answers = await self._ask_all(asked, question, deadline_ms / 1000)
        return replace(req, uuid=uuid, bids=answers)

    def settled(self, req: PingRequest, uuid: str, buyer_id: str | None) -> None:
        """Count how the bids of an auctioned ping ended: the winner's won, the others'
        lost (``uuid``/``buyer_id``: the reservation the ping answered, and its buyer)."""
        for buyer, answer in (req.bids or {}).items():
            if answer.outcome == bids.BID:
                won = uuid == req.uuid and buyer == buyer_id
                self._count(buyer, bids.WON if won else bids.LOST)

    async def close(self) -> None:
        await self.client.close()

    async def _ask_all(
        self, buyers: list[BuyerInfo], question: BidRequest, deadline: float
    ) -> dict[str, BidAnswer]:
        hidden = replace(question, caller_number=None)
        tasks = {
            b.rule.id: asyncio.create_task(
                self._ask(b, hidden if b.bidder and b.bidder.hide_caller else question, deadline)
            )
            for b in buyers
        }
        await asyncio.wait(tasks.values(), timeout=deadline)
        answers = {}
        for buyer_id, task in tasks.items():
            if task.done():
                answers[buyer_id] = task.result()
                continue
            task.cancel()
            answers[buyer_id] = BidAnswer(
                bids.TIMEOUT, None, f"no answer in {deadline * 1000:.0f} ms"
            )
            self._count(buyer_id, bids.TIMEOUT)
        return answers

    async def _ask(self, buyer: BuyerInfo, question: BidRequest, deadline: float) -> BidAnswer:
        bidder = buyer.bidder
        assert bidder is not None
        buyer_id = buyer.rule.id
        headers = self._opened(buyer_id, bidder.headers)
        if headers is None:
            return self._answer(buyer_id, BidAnswer(bids.ERROR, None, "bid_headers: cannot open"))
        started = time.perf_counter()
        try:
            status, body = await self.client.ask(
                bidder.url, headers, request_body(bidder.format, question), deadline
            )
        except BidTimeout as exc:
            return self._answer(buyer_id, BidAnswer(bids.TIMEOUT, None, str(exc)))
        except BidError as exc:
            took = (time.perf_counter() - started) * 1000
            return self._answer(buyer_id, BidAnswer(bids.ERROR, round(took, 2), exc.reason))
        took = time.perf_counter() - started
        self._observe(buyer_id, took)
        got = read_answer(bidder.format, status, body)
        ms = round(took * 1000, 2)
        if isinstance(got, Bid):
            why = refusal(got.destination, buyer.media_networks, self._catalog.get().sip_domain)
            if why is not None:
                got = NoBid(bids.INVALID, why)
        if isinstance(got, NoBid):
            if got.outcome != bids.NO_BID:
                log.info("bid refused", extra={"buyer": buyer_id, "outcome": got.outcome,
                                                "why": got.reason})  # fmt: skip
            return self._answer(buyer_id, BidAnswer(got.outcome, ms, got.reason))
        return self._answer(buyer_id, BidAnswer(
            bids.BID, ms, None, got.amount, got.destination, got.expires_in, got.bid_id,
            got.seconds,
        ))  # fmt: skip

    def _answer(self, buyer_id: str, answer: BidAnswer) -> BidAnswer:
        if answer.outcome != bids.BID:  # a bid is counted when it is won or lost (settled)
            self._count(buyer_id, answer.outcome)
        return answer

    def _opened(self, buyer_id: str, sealed: str | None) -> Mapping[str, str] | None:
        """A buyer's bid headers, opened once per sealed value; None when they cannot be."""
        if sealed is None:
            return {}
        if sealed not in self._headers:
            opened: Mapping[str, str] | None = None
            with contextlib.suppress(SealError, ValueError):
                site = self._catalog.get().site
                opened = unseal_json(site(), sealed, purpose=BID_HEADERS) if site else None
            if opened is None:
                log.error("bid_headers of buyer %s cannot be opened under this site key", buyer_id)
            self._headers[sealed] = opened
        return self._headers[sealed]
