"""Who sent this INVITE? The one authentication path of the SIP agent (SPEC §4.2, §4.5).

The pjsua2 callback translates an incoming INVITE into :meth:`Authenticator.authenticate` and
the :data:`Decision` back into a SIP response; the admin "would this be accepted?" check calls
the same object (:meth:`Authenticator.authenticate` with ``authorization=None`` for an IP,
:meth:`Authenticator.check_password` for a credential). Nothing here touches pjsua2.

Order of checks, and why:

1. Allowlisted source IP → accepted, no challenge (SPEC §4.2).
2. Throttled source → 403 before any hashing, so a guessing source costs next to nothing.
3. No ``Authorization`` → 401 challenge.
4. Unparseable ``Authorization``, a ``qop`` other than ``auth``, or no ``qop`` → 400: the
   client is broken, and another 401 would only loop.
5. Another realm, an algorithm we did not offer, a nonce we did not sign → 401 with a fresh
   nonce (the client may hold credentials for several realms, RFC 3261 §22.4).
6. Verify the response against the user's HA1 — or a dummy HA1 for an unknown user.
   Known user, wrong response → 403 and one failure counted. Unknown user → 401 (SPEC §4.5),
   also counted as a failure so that probing usernames is throttled like guessing passwords.
7. Right response, expired nonce → 401 ``stale=true`` (RFC 7616 §3.3).
8. Right response, nonce-count not above the last one accepted → 401 ``stale=true`` with a
   fresh nonce: a replay learns nothing new, and an honest client that reused a count (some
   reuse ``nc=00000001`` with a cached nonce) retries once without asking anyone.
9. Otherwise accepted as the credential's publisher.

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
from rtbridge.sip.auth.allowlist import Directory
from rtbridge.sip.auth.nonce import NonceCounter, NonceSigner, NonceState
from rtbridge.sip.auth.throttle import FailureThrottle, source_key

WWW_AUTHENTICATE = "WWW-Authenticate"

# Why an INVITE was not accepted: one name per outcome below, the same string in the decision
# log line ("auth_failure") and in /metrics (rtbridge_sip_auth_failures_total{reason}), so
# the two agree. The README's metrics table explains each.
MISSING_CREDENTIALS = "missing-credentials"  # not allowlisted, no Authorization: 401
THROTTLED = "throttled"  # the source failed max_failures times: 403 for the cooldown
BAD_METHOD = "bad-method"  # a method that is not a SIP token: 400
MALFORMED_CREDENTIALS = "malformed-credentials"  # unparseable Authorization: 400
MISSING_QOP = "missing-qop"  # RFC 2069 response without qop: 400
UNSUPPORTED_QOP = "unsupported-qop"  # qop other than "auth": 400
WRONG_REALM = "wrong-realm"  # credentials for another realm: 401
UNSUPPORTED_ALGORITHM = "unsupported-algorithm"  # an algorithm we did not offer: 401
BAD_NONCE = "bad-nonce"  # a nonce we did not sign (forged, another deployment's): 401
UNKNOWN_USER = "unknown-user"  # no such username: 401 (SPEC §4.5)
WRONG_PASSWORD = "wrong-password"  # noqa: S105  # known username, wrong response: 403
STALE_NONCE = "stale-nonce"  # right response, expired nonce: 401 stale=true
NONCE_COUNT_REUSED = "nonce-count-reused"  # right response, nc not above the last: 401 stale
CAUSES = (
    MISSING_CREDENTIALS, THROTTLED, BAD_METHOD, MALFORMED_CREDENTIALS, MISSING_QOP,
    UNSUPPORTED_QOP, WRONG_REALM, UNSUPPORTED_ALGORITHM, BAD_NONCE, UNKNOWN_USER,
    WRONG_PASSWORD, STALE_NONCE, NONCE_COUNT_REUSED,
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


Decision = Accepted | Challenge | Refused

TOO_MANY_FAILURES = "Too many failed attempts"
FORBIDDEN = "Forbidden"


class Authenticator:
    """Digest authentication state for one realm in one agent process.

    ``secret`` is shared by all agent processes of a deployment so that they accept each
    other's nonces (:mod:`rtbridge.sip.auth.nonce`). ``algorithms`` is the order the challenge
    offers them in; RFC 8760 §2.4 wants the preferred (SHA-256) first. Some older clients
    (SIPp 3.6, for one) only read the first challenge header and know MD5 only — such a
    deployment can pass ``algorithms=("MD5", "SHA-256")`` or ``("MD5",)``.

    Thread-safe: the counters it keeps lock themselves; the rest is immutable.
    """

    def __init__(
        self,
        *,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300.0,
        max_failures: int = 5,
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
        self._throttle = FailureThrottle(
            max_failures=max_failures, window=failure_window, cooldown=cooldown, clock=clock
        )
        # HA1 values of a random password nobody knows. An unknown username is verified
        # against these so that it costs the same hashing as a known one; otherwise the time
        # to answer would tell an attacker which usernames exist, whatever the status code.
        dummy = secrets.token_urlsafe(32)
        self._dummy_ha1: dict[str, str] = {
            a: digest.ha1("-", realm, dummy, a) for a in digest.ALGORITHMS
        }

    def challenge(self, *, stale: bool = False, cause: str = MISSING_CREDENTIALS) -> Challenge:
        """A 401 challenge with a fresh nonce offering every configured algorithm; ``cause``
        says why it is sent (one of :data:`CAUSES`)."""
        nonce = self._nonces.issue()
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
        )

    def authenticate(
        self, *, method: str, source_ip: str, authorization: str | None, directory: Directory
    ) -> Decision:
        """Decide what to answer one request; never raises on any header content.

        ``source_ip`` may carry a port (``1.2.3.4:5060``, ``[2001:db8::1]:5060``).
        ``authorization`` is the value of the request's ``Authorization`` header (after the
        colon). If a request carries several, pass the one whose ``realm`` is ours. Call this
        once per transaction, not per UDP retransmission (pjsip's transaction layer already
        absorbs those) — a retransmission repeats the nonce-count and would look like a replay.
        """
        now = self._clock()
        rule = directory.match_ip(source_ip, now)
        if rule is not None:
            return Accepted(rule.publisher_id, rule.describe())
        source = source_key(source_ip)
        if self._throttle.blocked(source):
            return Refused(403, TOO_MANY_FAILURES, cause=THROTTLED)
        if authorization is None or not authorization.strip():
            return self.challenge()
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
        if credentials.realm != self.realm:
            return self.challenge(cause=WRONG_REALM)
        if credentials.algorithm not in self.algorithms:
            return self.challenge(cause=UNSUPPORTED_ALGORITHM)
        nonce = self._nonces.check(credentials.nonce)
        if nonce.state is NonceState.INVALID:
            return self.challenge(cause=BAD_NONCE)

        credential = directory.credential(credentials.username)
        ha1_hex = (
            self._dummy_ha1[credentials.algorithm]
            if credential is None
            else credential.ha1(credentials.algorithm)
        )
        right = digest.verify_response(credentials, ha1_hex=ha1_hex, method=method)
        if credential is None or not right:
            if self._throttle.record_failure(source):
                return Refused(403, TOO_MANY_FAILURES, cause=THROTTLED)
            if credential is None:
                return self.challenge(cause=UNKNOWN_USER)
            return Refused(403, FORBIDDEN, cause=WRONG_PASSWORD)

        if nonce.state is NonceState.STALE:
            return self.challenge(stale=True, cause=STALE_NONCE)
        count = credentials.nonce_count
        assert count is not None  # qop present ⇒ nc present (parse_authorization)
        if not self._counts.accept(credentials.nonce, count, expires_at=nonce.expires_at, now=now):
            return self.challenge(stale=True, cause=NONCE_COUNT_REUSED)
        self._throttle.record_success(source)
        return Accepted(
            credential.publisher_id,
            f"digest user {credential.username} ({credentials.algorithm})",
        )

    def check_password(self, *, username: str, password: str, directory: Directory) -> Decision:
        """Admin dry-run: would ``username`` / ``password`` be accepted, as which publisher?

        Same lookup, same dummy-HA1 rule and same constant-time comparison as
        :meth:`authenticate`, without a nonce and without touching the throttle. Unknown user
        → the :class:`Challenge` the agent would send; wrong password → ``Refused(403)``.
        Both stored HA1 values must match, since a client may pick either algorithm; if only
        one does, the stored credential is inconsistent and the refusal says so.
        """
        credential = directory.credential(username)
        matches: list[str] = []
        for algorithm in digest.ALGORITHMS:
            stored = self._dummy_ha1[algorithm] if credential is None else credential.ha1(algorithm)
            candidate = digest.ha1(username, self.realm, password, algorithm)
            if digest.same_digest(candidate, stored):
                matches.append(algorithm)
        if credential is None:
            return self.challenge(cause=UNKNOWN_USER)
        if len(matches) == len(digest.ALGORITHMS):
            return Accepted(
                credential.publisher_id,
                f"digest user {credential.username} ({'/'.join(digest.ALGORITHMS)})",
            )
        if matches:
            return Refused(403, f"Password matches only the stored {matches[0]} digest")
        return Refused(403, FORBIDDEN)
