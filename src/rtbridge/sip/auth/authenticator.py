"""Who sent this INVITE? The one authentication path of the SIP agent (SPEC §4.2, §4.5).

The pjsua2 callback translates an incoming INVITE into :meth:`Authenticator.authenticate` and
the :data:`Decision` back into a SIP response; the admin "would this be accepted?" check calls
the same object (:meth:`Authenticator.authenticate` with ``authorization=None`` for an IP,
:meth:`Authenticator.check_password` for a credential). Nothing here touches pjsua2.

Order of checks, and why:

1. Allowlisted source IP → accepted, no challenge (SPEC §4.2).
2. A source over its failure limit across usernames → 403 before anything is parsed or
   hashed, so a guessing source costs next to nothing (:mod:`~rtbridge.sip.auth.throttle`).
3. No ``Authorization`` → 401 challenge; its nonce is bound to the source
   (:mod:`~rtbridge.sip.auth.nonce`).
4. Unparseable ``Authorization``, a ``qop`` other than ``auth``, or no ``qop`` → 400: the
   client is broken, and another 401 would only loop.
5. Another realm, an algorithm we did not offer, a nonce we did not sign *for this source*
   → 401 with a fresh nonce (the client may hold credentials for several realms, RFC 3261
   §22.4). A nonce fetched from another address is indistinguishable from a forged one (its
   MAC fails), so it gets a plain challenge (``bad-nonce``), not ``stale=true``: stale
   promises that the credentials were right, which nobody checked.
6. This username from this source, or this username from a source not known for it, over
   its limit → 403 before hashing.
7. Verify the response against the user's HA1 — or a dummy HA1 for an unknown user, so both
   cost the same hashing. Either way a response that does not verify → 403 ``Forbidden``,
   one answer for both (SPEC §4.5: no username oracle), counted once in each throttle table;
   the answer is ``Too many failed attempts`` instead when that failure reaches a limit. Only
   the cause (``unknown-user`` / ``wrong-password``), which operators see in logs and
   metrics, tells them apart.
8. Right response, expired nonce → 401 ``stale=true`` (RFC 7616 §3.3).
9. Right response, nonce-count not above the last one accepted → 401 ``stale=true`` with a
   fresh nonce: a replay learns nothing new, and an honest client that reused a count (some
   reuse ``nc=00000001`` with a cached nonce) retries once without asking anyone.
10. Otherwise accepted as the credential's publisher; this (source, username)'s failures are
    cleared and the source is remembered as known for the username.

About RFC 2069 (no ``qop``): RFC 3261 §22.4 item 8 makes servers send ``qop`` and says a client
that received it MUST send it back. Every challenge here carries ``qop="auth"``, so a response
without it comes from a non-conforming client — and without ``nc`` such a response could be
replayed for the nonce's whole lifetime. It is refused with 400 for MD5 and SHA-256 alike.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rtbridge.sip.auth import digest
from rtbridge.sip.auth.allowlist import Directory, IPAddress
from rtbridge.sip.auth.nonce import NonceCounter, NonceSigner, NonceState
from rtbridge.sip.auth.throttle import Limit, LoginThrottle, source_key

WWW_AUTHENTICATE = "WWW-Authenticate"

# Why an INVITE was not accepted: one name per outcome below, the same string in the decision
# log line ("auth_failure") and in /metrics (rtbridge_sip_auth_failures_total{reason}), so
# the two agree. docs/metrics.md explains each.
MISSING_CREDENTIALS = "missing-credentials"  # not allowlisted, no Authorization: 401
THROTTLED = "throttled"  # this username from this source failed max_failures times: 403
THROTTLED_SOURCE = "throttled-source"  # the source failed source_max_failures times: 403
THROTTLED_USERNAME = "throttled-username"  # the username failed from many sources: 403
BAD_METHOD = "bad-method"  # a method that is not a SIP token: 400
MALFORMED_CREDENTIALS = "malformed-credentials"  # unparseable Authorization: 400
MISSING_QOP = "missing-qop"  # RFC 2069 response without qop: 400
UNSUPPORTED_QOP = "unsupported-qop"  # qop other than "auth": 400
WRONG_REALM = "wrong-realm"  # credentials for another realm: 401
UNSUPPORTED_ALGORITHM = "unsupported-algorithm"  # an algorithm we did not offer: 401
BAD_NONCE = "bad-nonce"  # a nonce we did not sign for this source (forged, another's): 401
UNKNOWN_USER = "unknown-user"  # no such username: 403 Forbidden, as a wrong password
WRONG_PASSWORD = "wrong-password"  # noqa: S105  # known username, wrong response: 403
STALE_NONCE = "stale-nonce"  # right response, expired nonce: 401 stale=true
NONCE_COUNT_REUSED = "nonce-count-reused"  # right response, nc not above the last: 401 stale
CAUSES = (
    MISSING_CREDENTIALS, THROTTLED, THROTTLED_SOURCE, THROTTLED_USERNAME, BAD_METHOD,
    MALFORMED_CREDENTIALS, MISSING_QOP, UNSUPPORTED_QOP, WRONG_REALM, UNSUPPORTED_ALGORITHM,
    BAD_NONCE, UNKNOWN_USER, WRONG_PASSWORD, STALE_NONCE, NONCE_COUNT_REUSED,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Accepted:
    """The sender is ``publisher_id``; ``rule`` says why, for logs and the admin dry-run."""

    publisher_id: str
    rule: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """Answer 401 with these headers (one ``WWW-Authenticate`` per offered algorithm)."""

    headers: tuple[tuple[str, str], ...]
    cause: str = field(default=MISSING_CREDENTIALS, compare=False)  # why: a CAUSES name
    username: str | None = field(default=None, compare=False)  # tried, once parsed (for logs)

    @property
    def code(self) -> int:
        """Always 401: we are the UAS, not a proxy (RFC 3261 §22.2 vs §22.3)."""
        return 401


@dataclass(frozen=True, slots=True)
class Refused:
    """Answer ``code`` with ``reason`` as the reason phrase (a fixed text, never user input)."""

    code: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    cause: str = field(default=WRONG_PASSWORD, compare=False)  # why: a CAUSES name
    username: str | None = field(default=None, compare=False)  # tried, once parsed (for logs)


Decision = Accepted | Challenge | Refused

TOO_MANY_FAILURES = "Too many failed attempts"
FORBIDDEN = "Forbidden"


class Authenticator:
    """Digest authentication state for one realm in one agent process.

    ``secret`` is shared by all agent processes of a deployment so that they accept each
    other's nonces (:mod:`rtbridge.sip.auth.nonce`). ``algorithms`` is the order the challenge
    offers them in; RFC 8760 §2.4 wants the preferred (SHA-256) first. Some older clients
    (SIPp 3.6, for one) only read the first challenge header and know MD5 only — such a
    deployment can pass ``algorithms=("MD5", "SHA-256")`` or ``("MD5",)``. The failure limits
    are :class:`~rtbridge.sip.auth.throttle.LoginThrottle`'s: ``max_failures`` per (source,
    username), ``source_max_failures`` per source, ``username_max_failures`` per username,
    each within ``failure_window`` seconds and then refused for ``cooldown`` seconds.

    Thread-safe: the counters it keeps lock themselves; the rest is immutable.
    """

    def __init__(
        self,
        *,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300.0,
        max_failures: int = 5,
        source_max_failures: int = 20,
        username_max_failures: int = 20,
        failure_window: float = 60.0,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.time,
        algorithms: tuple[str, ...] = digest.ALGORITHMS,
    ) -> None:
        if not algorithms or not all(digest.is_supported(a) for a in algorithms):
            raise ValueError(f"algorithms must be a non-empty subset of {digest.ALGORITHMS}")
        self.realm = realm
        self.algorithms = tuple(dict.fromkeys(algorithms))
        self._clock = clock
        self._nonces = NonceSigner(secret, realm=realm, ttl=nonce_ttl, clock=clock)
        self._counts = NonceCounter()
        self._throttle = LoginThrottle(
            max_failures=max_failures, source_max_failures=source_max_failures,
            username_max_failures=username_max_failures, window=failure_window,
            cooldown=cooldown, clock=clock,
        )  # fmt: skip
        # HA1 values of a random password nobody knows. An unknown username is verified
        # against these so that it costs the same hashing as a known one; otherwise the time
        # to answer would tell an attacker which usernames exist, whatever the status code.
        dummy = secrets.token_urlsafe(32)
        self._dummy_ha1: dict[str, str] = {
            a: digest.ha1("-", realm, dummy, a) for a in digest.ALGORITHMS
        }

    def challenge(
        self, *, source_ip: str | IPAddress, stale: bool = False, cause: str = MISSING_CREDENTIALS
    ) -> Challenge:
        """A 401 challenge with a fresh nonce, valid from ``source_ip`` only, offering every
        configured algorithm; ``cause`` says why it is sent (one of :data:`CAUSES`)."""
        return self._challenge(source_key(source_ip), stale=stale, cause=cause)

    def _challenge(
        self,
        source: str,
        *,
        stale: bool = False,
        cause: str = MISSING_CREDENTIALS,
        username: str | None = None,
    ) -> Challenge:
        nonce = self._nonces.issue(source=source)
        return Challenge(
            tuple(
                (
                    WWW_AUTHENTICATE,
                    digest.build_challenge(
                        realm=self.realm, nonce=nonce, algorithm=algorithm, stale=stale
                    ),
                )
                for algorithm in self.algorithms
            ),
            cause,
            username,
        )

    def authenticate(
        self,
        *,
        method: str,
        source_ip: str | IPAddress,
        authorization: str | None,
        directory: Directory,
    ) -> Decision:
        """Decide what to answer one request; never raises on any header content.

        ``source_ip`` may carry a port (``1.2.3.4:5060``, ``[2001:db8::1]:5060``); behind a
        trusted proxy it is the publisher's address the proxy names. ``authorization`` is the
        value of the request's ``Authorization`` header (after the colon). If a request
        carries several, pass the one whose ``realm`` is ours. Call this once per
        transaction, not per UDP retransmission (pjsip's transaction layer already absorbs
        those) — a retransmission repeats the nonce-count and would look like a replay.
        """
        now = self._clock()
        rule = directory.match_ip(source_ip, now)
        if rule is not None:
            return Accepted(rule.publisher_id, rule.describe())
        source = source_key(source_ip)
        if self._throttle.source_blocked(source):
            return Refused(403, TOO_MANY_FAILURES, cause=THROTTLED_SOURCE)
        if authorization is None or not authorization.strip():
            return self._challenge(source)
        if not digest.is_token(method):  # HA2 hashes it; pjsip would not pass a bad one
            return Refused(400, "Bad request method", cause=BAD_METHOD)
        try:
            credentials = digest.parse_authorization(authorization)
        except digest.DigestSyntaxError as exc:
            return Refused(400, str(exc), cause=MALFORMED_CREDENTIALS)
        if credentials.qop is None:
            return Refused(
                400, 'Digest response without qop; qop="auth" is required', cause=MISSING_QOP
            )
        if credentials.qop.lower() != "auth":
            return Refused(400, 'Only qop="auth" is supported', cause=UNSUPPORTED_QOP)
        username = credentials.username
        if credentials.realm != self.realm:
            return self._challenge(source, cause=WRONG_REALM, username=username)
        if credentials.algorithm not in self.algorithms:
            return self._challenge(source, cause=UNSUPPORTED_ALGORITHM, username=username)
        nonce = self._nonces.check(credentials.nonce, source=source)
        if nonce.state is NonceState.INVALID:
            return self._challenge(source, cause=BAD_NONCE, username=username)
        limit = self._throttle.blocked(source, username)
        if limit is not None:
            return Refused(403, TOO_MANY_FAILURES, cause=_THROTTLED[limit], username=username)

        credential = directory.credential(username)
        ha1_hex = (
            self._dummy_ha1[credentials.algorithm]
            if credential is None
            else credential.ha1(credentials.algorithm)
        )
        right = digest.verify_response(credentials, ha1_hex=ha1_hex, method=method)
        if credential is None or not right:
            limit = self._throttle.record_failure(source, username)
            if limit is not None:
                return Refused(403, TOO_MANY_FAILURES, cause=_THROTTLED[limit], username=username)
            cause = UNKNOWN_USER if credential is None else WRONG_PASSWORD
            return Refused(403, FORBIDDEN, cause=cause, username=username)

        if nonce.state is NonceState.STALE:
            return self._challenge(source, stale=True, cause=STALE_NONCE, username=username)
        count = credentials.nonce_count
        assert count is not None  # qop present ⇒ nc present (parse_authorization)
        if not self._counts.accept(credentials.nonce, count, expires_at=nonce.expires_at, now=now):
            return self._challenge(source, stale=True, cause=NONCE_COUNT_REUSED, username=username)
        self._throttle.record_success(source, username)
        return Accepted(
            credential.publisher_id,
            f"digest user {credential.username} ({credentials.algorithm})",
        )

    def check_password(self, *, username: str, password: str, directory: Directory) -> Decision:
        """Admin dry-run: would ``username`` / ``password`` be accepted, as which publisher?

        Same lookup, same dummy-HA1 rule and same constant-time comparison as
        :meth:`authenticate`, without a nonce and without touching the throttle. An unknown
        user and a wrong password are both ``Refused(403, "Forbidden")``, the agent's one
        answer for both; the cause (``unknown-user`` / ``wrong-password``) tells the admin
        which. Both stored HA1 values must match, since a client may pick either algorithm;
        if only one does, the stored credential is inconsistent and the refusal says so.
        """
        credential = directory.credential(username)
        matches: list[str] = []
        for algorithm in digest.ALGORITHMS:
            stored = self._dummy_ha1[algorithm] if credential is None else credential.ha1(algorithm)
            candidate = digest.ha1(username, self.realm, password, algorithm)
            if digest.same_digest(candidate, stored):
                matches.append(algorithm)
        if credential is None:
            return Refused(403, FORBIDDEN, cause=UNKNOWN_USER, username=username)
        if len(matches) == len(digest.ALGORITHMS):
            return Accepted(
                credential.publisher_id,
                f"digest user {credential.username} ({'/'.join(digest.ALGORITHMS)})",
            )
        if matches:
            return Refused(403, f"Password matches only the stored {matches[0]} digest")
        return Refused(403, FORBIDDEN)


# The cause a refusal by each throttle limit is counted and logged under.
_THROTTLED = {
    Limit.LOGIN: THROTTLED,
    Limit.SOURCE: THROTTLED_SOURCE,
    Limit.USERNAME: THROTTLED_USERNAME,
}
