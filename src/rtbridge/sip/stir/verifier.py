"""Verifying a call's SHAKEN Identity header, end to end: choose the header, read its
PASSporT, check what costs nothing first (shape, freshness, the call's numbers), then fetch
the signer's chain (cached), check it leads to an STI-CA root, and check the signature.

Called by several router threads at once: the chain cache is the only shared state, and it
has its own lock. Never raises on what a caller sent: every problem is a ``failed``
Attestation with a short reason. A bug is logged (its type and place, no token) and answered
``failed`` too — a call must not be refused with a 500 for a verifier's mistake."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from rtbridge.sip.stir.attestation import Attestation, Failed, failed
from rtbridge.sip.stir.certificates import Fetcher
from rtbridge.sip.stir.chain import Roots, load_roots
from rtbridge.sip.stir.chain_cache import ChainCache
from rtbridge.sip.stir.identity import choose
from rtbridge.sip.stir.passport import check_fresh, check_numbers, check_signature, read

log = logging.getLogger(__name__)

INTERNAL = "verifier error"


class Verifier:
    def __init__(
        self,
        *,
        roots_file: str | None,
        https_ca_file: str | None = None,
        fetch_timeout: float = 2.0,
        allowed_networks: Sequence[str] = (),
        max_age: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``roots_file``: the STI-CA roots (PEM bundle); None leaves every token failed,
        while a file that cannot be read raises here, at start-up. ``allowed_networks``:
        CIDRs an x5u host may resolve into although inside (tests: 127.0.0.0/8)."""
        self.roots = Roots(load_roots(roots_file) if roots_file else [])
        self.fetcher = Fetcher(
            timeout=fetch_timeout, https_ca_file=https_ca_file, allowed_networks=allowed_networks
        )
        self.chains = ChainCache(self.fetcher.fetch, clock=clock, wait=fetch_timeout + 1.0)
        self.max_age = max_age
        self.clock = clock

    def verify(
        self, identities: Sequence[str], *, orig: str | None, dest: str | None
    ) -> Attestation:
        """The attestation of a call with these raw Identity header values, from ``orig``
        to ``dest`` (E.164); ``none`` when there is no Identity header."""
        if not identities:
            return Attestation("none")
        try:
            return self._verify(identities, orig, dest)
        except Failed as problem:
            return failed(problem.why)
        except Exception:
            log.exception("STIR verification failed on a bug")
            return failed(INTERNAL)

    def _verify(self, identities: Sequence[str], orig: str | None, dest: str | None) -> Attestation:
        self.roots.check_configured()
        chosen = choose(identities)
        token = read(chosen.jws)
        if chosen.info != token.x5u:
            raise Failed("info does not match x5u")
        check_fresh(token, self.clock(), self.max_age)
        check_numbers(token, orig, dest)
        key = self.roots.leaf_key(self.chains.get(token.x5u), self.clock())
        check_signature(chosen.jws, key)
        return Attestation(token.attest, origid=token.origid, source="identity")
