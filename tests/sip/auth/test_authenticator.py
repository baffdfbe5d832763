"""The agent's authentication decisions (SPEC §4.2, §4.5), end to end through real objects."""

from __future__ import annotations

import random

import pytest

from rtbridge.sip.auth import digest
from rtbridge.sip.auth.allowlist import AllowRule, Credential, Directory, parse_cidr
from rtbridge.sip.auth.authenticator import (
    CAUSES,
    Accepted,
    Authenticator,
    Challenge,
    Decision,
    Refused,
)

REALM = "sip.rtb.example.com"
SECRET = b"test-secret-shared-by-all-agents"
PASSWORD = "s3cret-Pass-123"
PASSWORD2 = "An0ther-Pass-456"
R_URI = "sip:0b6f3c2e-6a40-4a57-9d2e-3f1c5d9f0a11@sip.rtb.example.com"
SOURCE = "198.51.100.20:5060"
NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock: Clock) -> Authenticator:
    return Authenticator(
        realm=REALM, secret=SECRET, nonce_ttl=300.0, max_failures=3, source_max_failures=6,
        username_max_failures=6, cooldown=60.0, clock=clock,
    )  # fmt: skip


@pytest.fixture
def directory() -> Directory:
    return Directory(
        rules=[
            AllowRule(parse_cidr("203.0.113.0/24"), "pub-ip", 7),
            AllowRule(parse_cidr("2001:db8::/32"), "pub-ip6", 8),
            AllowRule(parse_cidr("192.0.2.0/24"), "pub-old", 9, expires_at=NOW - 1),
        ],
        credentials=[
            Credential.from_password(
                username="pub1", publisher_id="pub-1", password=PASSWORD, realm=REALM
            ),
            Credential.from_password(
                username="pub2", publisher_id="pub-2", password=PASSWORD2, realm=REALM
            ),
        ],
    )


def _nonce(challenge: Decision, index: int = 0) -> str:
    assert isinstance(challenge, Challenge)
    return digest.parse_params(challenge.headers[index][1])[1]["nonce"]


def _stale(decision: Decision) -> bool:
    assert isinstance(decision, Challenge)
    return all(
        digest.parse_params(value)[1].get("stale") == "true" for _, value in decision.headers
    )


def _login(
    auth: Authenticator,
    directory: Directory,
    *,
    nonce: str | None = None,
    username: str = "pub1",
    password: str = PASSWORD,
    algorithm: str = "SHA-256",
    nc: int = 1,
    uri: str = R_URI,
    realm: str = REALM,
    source: str = SOURCE,
) -> Decision:
    if nonce is None:
        nonce = _nonce(auth.challenge(source_ip=source))
    header = digest.build_authorization(
        username=username,
        password=password,
        realm=realm,
        nonce=nonce,
        method="INVITE",
        uri=uri,
        algorithm=algorithm,
        nc=nc,
    )
    return auth.authenticate(
        method="INVITE", source_ip=source, authorization=header, directory=directory
    )


# --- allowlist -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "publisher", "rule"),
    [
        ("203.0.113.9:5060", "pub-ip", "ip 203.0.113.0/24 (rule 7)"),
        ("::ffff:203.0.113.9", "pub-ip", "ip 203.0.113.0/24 (rule 7)"),
        ("[2001:db8::77]:5060", "pub-ip6", "ip 2001:db8::/32 (rule 8)"),
    ],
)
def test_allowlisted_source_is_accepted_without_challenge(
    auth: Authenticator, directory: Directory, source: str, publisher: str, rule: str
) -> None:
    decision = auth.authenticate(
        method="INVITE", source_ip=source, authorization=None, directory=directory
    )
    assert decision == Accepted(publisher, rule)


def test_allowlist_wins_even_with_bad_authorization(
    auth: Authenticator, directory: Directory
) -> None:
    decision = auth.authenticate(
        method="INVITE", source_ip="203.0.113.9", authorization="garbage", directory=directory
    )
    assert isinstance(decision, Accepted)


def test_expired_allowlist_rule_falls_back_to_challenge(
    auth: Authenticator, directory: Directory
) -> None:
    decision = auth.authenticate(
        method="INVITE", source_ip="192.0.2.5", authorization=None, directory=directory
    )
    assert isinstance(decision, Challenge)


# --- challenge -----------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "   "])
def test_no_credentials_get_a_challenge_sha256_first(
    auth: Authenticator, directory: Directory, authorization: str | None
) -> None:
    decision = auth.authenticate(
        method="INVITE", source_ip=SOURCE, authorization=authorization, directory=directory
    )
    assert isinstance(decision, Challenge)
    assert decision.code == 401
    assert [name for name, _ in decision.headers] == ["WWW-Authenticate"] * 2
    params = [digest.parse_params(value)[1] for _, value in decision.headers]
    assert [p["algorithm"] for p in params] == ["SHA-256", "MD5"]  # RFC 8760 §2.4
    assert all(p["realm"] == REALM and p["qop"] == "auth" and "stale" not in p for p in params)
    assert params[0]["nonce"] == params[1]["nonce"]


def test_challenges_carry_fresh_nonces(auth: Authenticator) -> None:
    assert _nonce(auth.challenge(source_ip=SOURCE)) != _nonce(auth.challenge(source_ip=SOURCE))


def test_algorithm_order_is_configurable() -> None:
    auth = Authenticator(realm=REALM, secret=SECRET, algorithms=("MD5", "SHA-256", "MD5"))
    assert auth.algorithms == ("MD5", "SHA-256")
    assert "algorithm=MD5" in auth.challenge(source_ip=SOURCE).headers[0][1]
    with pytest.raises(ValueError):
        Authenticator(realm=REALM, secret=SECRET, algorithms=("SHA-512-256",))
    with pytest.raises(ValueError):
        Authenticator(realm=REALM, secret=SECRET, algorithms=())


# --- digest --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_right_password_is_accepted(
    auth: Authenticator, directory: Directory, algorithm: str
) -> None:
    decision = _login(auth, directory, algorithm=algorithm)
    assert decision == Accepted("pub-1", f"digest user pub1 ({algorithm})")


def test_uri_need_not_equal_the_request_uri(auth: Authenticator, directory: Directory) -> None:
    # SIPp signs "sip:<host>:<port>"; SBCs rewrite the R-URI after signing.
    decision = _login(auth, directory, uri="sip:127.0.0.1:5060")
    assert isinstance(decision, Accepted)


def test_another_agent_with_the_same_secret_accepts_our_nonce(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    other = Authenticator(realm=REALM, secret=SECRET, clock=clock)
    assert isinstance(
        _login(other, directory, nonce=_nonce(auth.challenge(source_ip=SOURCE))), Accepted
    )


def test_wrong_password_is_refused_403(auth: Authenticator, directory: Directory) -> None:
    decision = _login(auth, directory, password="wrong")
    assert decision == Refused(403, "Forbidden")


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_unknown_user_gets_the_answer_of_a_wrong_password(
    auth: Authenticator, directory: Directory, algorithm: str
) -> None:
    """Issue 17 row 8 (SPEC §4.5): no username oracle — the same code and reason phrase for
    both; only the cause, which operators see, differs."""
    unknown = _login(auth, directory, username="nobody", algorithm=algorithm)
    wrong = _login(auth, directory, password="wrong", algorithm=algorithm)
    assert unknown == wrong == Refused(403, "Forbidden")
    assert isinstance(unknown, Refused) and isinstance(wrong, Refused)
    assert (unknown.cause, wrong.cause) == ("unknown-user", "wrong-password")
    assert (unknown.username, wrong.username) == ("nobody", "pub1")


def test_unknown_user_with_a_stale_nonce_is_403_too(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    nonce = _nonce(auth.challenge(source_ip=SOURCE))
    clock.now += 301
    assert _login(auth, directory, nonce=nonce, username="nobody") == Refused(403, "Forbidden")


def test_other_realm_is_challenged(auth: Authenticator, directory: Directory) -> None:
    decision = _login(auth, directory, realm="other.example.com")
    assert isinstance(decision, Challenge)


def test_algorithm_not_offered_is_challenged(clock: Clock, directory: Directory) -> None:
    md5_only = Authenticator(realm=REALM, secret=SECRET, clock=clock, algorithms=("MD5",))
    assert isinstance(_login(md5_only, directory, algorithm="SHA-256"), Challenge)
    assert isinstance(_login(md5_only, directory, algorithm="MD5"), Accepted)
    header = digest.build_authorization(
        username="pub1", password=PASSWORD, realm=REALM, nonce="n", method="INVITE", uri=R_URI
    ).replace("algorithm=MD5", "algorithm=MD5-sess")
    decision = md5_only.authenticate(
        method="INVITE", source_ip=SOURCE, authorization=header, directory=directory
    )
    assert isinstance(decision, Challenge)


# --- nonce ---------------------------------------------------------------------------------


def test_stale_nonce_with_right_password_gets_stale_challenge(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    nonce = _nonce(auth.challenge(source_ip=SOURCE))
    clock.now += 301
    decision = _login(auth, directory, nonce=nonce)
    assert isinstance(decision, Challenge)
    assert _stale(decision)
    assert _nonce(decision) != nonce
    assert isinstance(_login(auth, directory, nonce=_nonce(decision)), Accepted)


def test_stale_nonce_with_wrong_password_is_still_403(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    nonce = _nonce(auth.challenge(source_ip=SOURCE))
    clock.now += 301
    assert _login(auth, directory, nonce=nonce, password="wrong") == Refused(403, "Forbidden")


def test_forged_nonce_gets_a_plain_challenge(auth: Authenticator, directory: Directory) -> None:
    issued, random_part, _ = _nonce(auth.challenge(source_ip=SOURCE)).split(".")
    for forged in (f"{issued}.{random_part}.{'A' * 22}", "dcd98b7102dd2f0e8b11d0f600bfb0c093"):
        decision = _login(auth, directory, nonce=forged)
        assert isinstance(decision, Challenge)
        assert not _stale(decision)


def test_nonce_from_another_secret_is_not_ours(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    stranger = Authenticator(realm=REALM, secret=b"some-other-deployment-secret", clock=clock)
    decision = _login(auth, directory, nonce=_nonce(stranger.challenge(source_ip=SOURCE)))
    assert isinstance(decision, Challenge)


def test_nonce_count_replay_is_rechallenged(auth: Authenticator, directory: Directory) -> None:
    nonce = _nonce(auth.challenge(source_ip=SOURCE))
    assert isinstance(_login(auth, directory, nonce=nonce, nc=1), Accepted)
    replay = _login(auth, directory, nonce=nonce, nc=1)
    assert isinstance(replay, Challenge)
    assert _stale(replay)
    assert _nonce(replay) != nonce
    assert isinstance(_login(auth, directory, nonce=nonce, nc=2), Accepted)
    assert isinstance(_login(auth, directory, nonce=nonce, nc=1), Challenge)


def test_nc_zero_is_rechallenged(auth: Authenticator, directory: Directory) -> None:
    assert isinstance(_login(auth, directory, nc=0), Challenge)


def test_wrong_guess_does_not_burn_the_real_clients_count(
    auth: Authenticator, directory: Directory
) -> None:
    nonce = _nonce(auth.challenge(source_ip=SOURCE))
    assert _login(auth, directory, nonce=nonce, nc=5, password="guess") == Refused(403, "Forbidden")
    assert isinstance(_login(auth, directory, nonce=nonce, nc=1), Accepted)


# --- throttle (max_failures=3 per source and username, 6 per source, 6 per username) -------

TOO_MANY = Refused(403, "Too many failed attempts")


def _cause(decision: Decision) -> str:
    assert isinstance(decision, Challenge | Refused), decision
    return decision.cause


def test_throttle_then_recovery_after_cooldown(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    assert _login(auth, directory, password="x1") == Refused(403, "Forbidden")
    assert _login(auth, directory, password="x2") == Refused(403, "Forbidden")
    assert _login(auth, directory, password="x3") == TOO_MANY
    # While blocked, even the right password is refused, cheaply.
    assert _login(auth, directory) == TOO_MANY
    # The block is this username's from this source: another username from the source,
    # the username from another source, and allowlisted sources are unaffected.
    assert isinstance(_login(auth, directory, username="pub2", password=PASSWORD2), Accepted)
    assert isinstance(_login(auth, directory, source="198.51.100.21"), Accepted)
    allowlisted = auth.authenticate(
        method="INVITE", source_ip="203.0.113.1", authorization=None, directory=directory
    )
    assert isinstance(allowlisted, Accepted)
    clock.now += 60
    assert isinstance(_login(auth, directory), Accepted)


def test_throttle_keys_ipv6_by_64(auth: Authenticator, directory: Directory) -> None:
    for i in range(3):
        _login(auth, directory, password="wrong", source=f"[2001:db9:0:1::{i + 1}]:5060")
    assert _login(auth, directory, source="2001:db9:0:1::99") == TOO_MANY
    assert isinstance(_login(auth, directory, source="2001:db9:0:2::1"), Accepted)


def test_unknown_usernames_are_throttled_like_known_ones(
    auth: Authenticator, directory: Directory
) -> None:
    """The throttle must not become the oracle the 403 stopped being."""
    for name in ("pub1", "nobody"):
        answers = [_login(auth, directory, username=name, password="wrong") for _ in range(4)]
        assert answers == [Refused(403, "Forbidden")] * 2 + [TOO_MANY] * 2, name


def test_another_usernames_success_does_not_reset_guessing(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    """Issue 17 row 2: valid pub2 logins between wrong pub1 guesses from one source reset the
    source's count, so pub1's password could be guessed at full speed. A success clears its
    own username's failures from its source only."""
    assert _login(auth, directory, password="guess-1") == Refused(403, "Forbidden")
    assert isinstance(_login(auth, directory, username="pub2", password=PASSWORD2), Accepted)
    assert _login(auth, directory, password="guess-2") == Refused(403, "Forbidden")
    assert isinstance(_login(auth, directory, username="pub2", password=PASSWORD2), Accepted)
    assert _login(auth, directory, password="guess-3") == TOO_MANY
    assert _cause(_login(auth, directory)) == "throttled"  # the right password, in the cooldown
    assert isinstance(_login(auth, directory, username="pub2", password=PASSWORD2), Accepted)
    clock.now += 60
    assert isinstance(_login(auth, directory), Accepted)


def test_a_success_clears_its_own_failures(auth: Authenticator, directory: Directory) -> None:
    """A publisher that mistyped twice and then got it right starts again from zero — as
    long as its source stays under the per-source limit (6 here), which no success clears."""
    for _ in range(3):
        assert _login(auth, directory, password="typo") == Refused(403, "Forbidden")
        assert isinstance(_login(auth, directory), Accepted)
    assert _login(auth, directory, password="typo") == Refused(403, "Forbidden")
    assert _login(auth, directory, password="typo") == Refused(403, "Forbidden")  # 5th
    assert _cause(_login(auth, directory, password="typo")) == "throttled-source"  # 6th


def test_source_limit_across_usernames(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    """Two guesses per username stay under the per-login limit; the source's limit across
    usernames (6) still stops the source, successes in between notwithstanding."""
    causes = []
    for name in ("a", "a", "b", "b", "c", "c"):
        causes.append(_cause(_login(auth, directory, username=name, password="guess")))
        if len(causes) < 6:
            assert isinstance(_login(auth, directory, username="pub2", password=PASSWORD2),
                              Accepted)  # fmt: skip
    assert causes == ["unknown-user"] * 5 + ["throttled-source"]
    # Now everything from the source is refused before any parsing or hashing.
    assert _cause(_login(auth, directory, username="pub2", password=PASSWORD2)) == (
        "throttled-source"
    )
    bare = auth.authenticate(
        method="INVITE", source_ip=SOURCE, authorization=None, directory=directory
    )
    assert bare == TOO_MANY and _cause(bare) == "throttled-source"
    assert isinstance(_login(auth, directory, source="198.51.100.21"), Accepted)
    clock.now += 60
    assert isinstance(_login(auth, directory), Accepted)


def test_username_limit_across_sources_spares_known_sources(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    """Guessing one password from many sources is slowed (6 failures in all), but cannot
    lock the publisher out of the address it authenticated from."""
    assert isinstance(_login(auth, directory), Accepted)  # SOURCE is now known for pub1
    for i in range(6):
        decision = _login(auth, directory, password="guess", source=f"192.0.2.{i // 2 + 100}")
    assert decision == TOO_MANY and _cause(decision) == "throttled-username"
    fresh = _login(auth, directory, source="192.0.2.200")  # right password, unknown address
    assert fresh == TOO_MANY and _cause(fresh) == "throttled-username"
    assert isinstance(_login(auth, directory), Accepted)  # the known source
    assert isinstance(_login(auth, directory, username="pub2", password=PASSWORD2,
                             source="192.0.2.200"), Accepted)  # fmt: skip
    clock.now += 60
    assert isinstance(_login(auth, directory, source="192.0.2.200"), Accepted)


def test_bad_digests_from_another_source_do_not_lock_the_publisher_out(
    auth: Authenticator, directory: Directory
) -> None:
    """Issue 17 row 7: failures from one source are that source's, for that username."""
    for _ in range(5):
        _login(auth, directory, password="guess", source="192.0.2.77")
    assert _cause(_login(auth, directory, source="192.0.2.77")) == "throttled"
    assert isinstance(_login(auth, directory), Accepted)


def test_nonce_is_bound_to_the_source(auth: Authenticator, directory: Directory) -> None:
    """Issue 17 row 7: a nonce fetched from one source is refused from another with a fresh
    challenge (bad-nonce, not stale: nobody checked the credentials), and is not counted."""
    nonce = _nonce(auth.challenge(source_ip=SOURCE))
    elsewhere = _login(auth, directory, nonce=nonce, source="198.51.100.99:5060")
    assert isinstance(elsewhere, Challenge) and not _stale(elsewhere)
    assert elsewhere.cause == "bad-nonce"
    assert _nonce(elsewhere) != nonce
    # Its fresh nonce works from there; the first one still works from where it was fetched
    # (another port of the same address too).
    assert isinstance(_login(auth, directory, nonce=_nonce(elsewhere),
                             source="198.51.100.99:5070"), Accepted)  # fmt: skip
    assert isinstance(_login(auth, directory, nonce=nonce, source="198.51.100.20:5999"), Accepted)
    # IPv6: bound to the /64, like the throttle.
    nonce6 = _nonce(auth.challenge(source_ip="[2001:db9:0:1::1]:5060"))
    assert isinstance(_login(auth, directory, nonce=nonce6, source="2001:db9:0:1::2"), Accepted)
    assert isinstance(_login(auth, directory, nonce=nonce6, nc=2, source="2001:db9:0:2::1"),
                      Challenge)  # fmt: skip


# --- malformed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "Digest",
        'Digest username="pub1"',
        'Digest username="pub1", realm="sip.rtb.example.com", nonce="n", response="00"',
        'Digest username="pub1", realm="unterminated',
        "Digest username=" + "x" * 100_000,
        'Digest username="' + "\\" * 5000 + '"',
        "Digest a=b\r\nX: y",
    ],
)
def test_malformed_authorization_is_400(
    auth: Authenticator, directory: Directory, header: str
) -> None:
    decision = auth.authenticate(
        method="INVITE", source_ip=SOURCE, authorization=header, directory=directory
    )
    assert isinstance(decision, Refused)
    assert decision.code == 400
    assert "\r" not in decision.reason and "\n" not in decision.reason
    assert len(decision.reason) < 100


def test_rfc2069_response_without_qop_is_400(auth: Authenticator, directory: Directory) -> None:
    header = digest.build_authorization(
        username="pub1",
        password=PASSWORD,
        realm=REALM,
        nonce=_nonce(auth.challenge(source_ip=SOURCE)),
        method="INVITE",
        uri=R_URI,
        qop=None,
    )
    decision = auth.authenticate(
        method="INVITE", source_ip=SOURCE, authorization=header, directory=directory
    )
    assert isinstance(decision, Refused) and decision.code == 400


def test_qop_auth_int_is_400(auth: Authenticator, directory: Directory) -> None:
    header = digest.build_authorization(
        username="pub1",
        password=PASSWORD,
        realm=REALM,
        nonce=_nonce(auth.challenge(source_ip=SOURCE)),
        method="INVITE",
        uri=R_URI,
        qop="auth-int",
    )
    decision = auth.authenticate(
        method="INVITE", source_ip=SOURCE, authorization=header, directory=directory
    )
    assert decision == Refused(400, 'Only qop="auth" is supported')


def test_random_garbage_never_raises(auth: Authenticator, directory: Directory) -> None:
    rng = random.Random(1234)
    valid = digest.build_authorization(
        username="pub1",
        password=PASSWORD,
        realm=REALM,
        nonce=_nonce(auth.challenge(source_ip=SOURCE)),
        method="INVITE",
        uri=R_URI,
        algorithm="SHA-256",
    )
    alphabet = 'abcXYZ019 \t=,"\\/:@.-_\x00\r\n\u00e9\U0001f600'
    seen: set[type] = set()
    for i in range(3000):
        if i % 2:
            chars = list(valid)
            for _ in range(rng.randrange(1, 4)):
                chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
                del chars[rng.randrange(len(chars))]
            header = "".join(chars)
        else:
            header = "".join(rng.choice(alphabet) for _ in range(rng.randrange(300)))
        source = rng.choice([SOURCE, "garbage", "", "[::1", "::1"])
        decision = auth.authenticate(
            method="INVITE", source_ip=source, authorization=header, directory=directory
        )
        assert isinstance(decision, Accepted | Challenge | Refused)
        if isinstance(decision, Refused):
            assert decision.code in (400, 403)
        seen.add(type(decision))
    assert {Challenge, Refused} <= seen


# --- admin dry-run -------------------------------------------------------------------------


def test_check_password(auth: Authenticator, directory: Directory) -> None:
    assert auth.check_password(username="pub1", password=PASSWORD, directory=directory) == (
        Accepted("pub-1", "digest user pub1 (SHA-256/MD5)")
    )
    assert auth.check_password(username="pub1", password="nope", directory=directory) == (
        Refused(403, "Forbidden")
    )
    # The agent's one answer for both; the cause tells the admin which.
    unknown = auth.check_password(username="nobody", password=PASSWORD, directory=directory)
    assert unknown == Refused(403, "Forbidden") and _cause(unknown) == "unknown-user"


def test_check_password_flags_inconsistent_stored_digests(auth: Authenticator) -> None:
    good = Credential.from_password(
        username="pub1", publisher_id="pub-1", password=PASSWORD, realm=REALM
    )
    other = Credential.from_password(
        username="pub1", publisher_id="pub-1", password="old-password", realm=REALM
    )
    mixed = Credential("pub1", "pub-1", ha1_md5=other.ha1_md5, ha1_sha256=good.ha1_sha256)
    decision = auth.check_password(
        username="pub1", password=PASSWORD, directory=Directory(credentials=[mixed])
    )
    assert decision == Refused(403, "Password matches only the stored SHA-256 digest")


def test_check_password_does_not_touch_the_throttle(
    auth: Authenticator, directory: Directory
) -> None:
    for _ in range(10):
        auth.check_password(username="pub1", password="nope", directory=directory)
    assert isinstance(_login(auth, directory), Accepted)


def test_credentials_hashed_for_another_realm_do_not_work(clock: Clock) -> None:
    # HA1 is bound to the realm: renaming the SIP domain requires setting passwords again.
    directory = Directory(
        credentials=[
            Credential.from_password(
                username="pub1", publisher_id="pub-1", password=PASSWORD, realm="old.example.com"
            )
        ]
    )
    auth = Authenticator(realm=REALM, secret=SECRET, clock=clock)
    assert _login(auth, directory) == Refused(403, "Forbidden")


@pytest.mark.parametrize("method", ["", "INV ITE", "INVITE\udcff", "\x00"])
def test_bad_method_is_400(auth: Authenticator, directory: Directory, method: str) -> None:
    header = digest.build_authorization(
        username="pub1", password=PASSWORD, realm=REALM, nonce="n", method="INVITE", uri=R_URI
    )
    decision = auth.authenticate(
        method=method, source_ip=SOURCE, authorization=header, directory=directory
    )
    assert decision == Refused(400, "Bad request method")


def test_odd_unicode_in_admin_input_never_raises(auth: Authenticator) -> None:
    odd = Credential.from_password(
        username="pub\u00e9", publisher_id="p", password="pa\udcffss\U0001f600", realm=REALM
    )
    directory = Directory(credentials=[odd])
    assert isinstance(
        auth.check_password(
            username="pub\u00e9", password="pa\udcffss\U0001f600", directory=directory
        ),
        Accepted,
    )
    assert auth.check_password(
        username="pub\u00e9", password="other", directory=directory
    ) == Refused(403, "Forbidden")
    unknown = auth.check_password(username="\udcff", password="\udcff", directory=directory)
    assert unknown == Refused(403, "Forbidden")


# --- causes (rtbridge_sip_auth_failures_total{reason}, the decision log's auth_failure) ----


def test_every_refusal_names_its_cause(
    auth: Authenticator, directory: Directory, clock: Clock
) -> None:
    """Each way authentication says no carries the cause the agent counts and logs."""

    def raw(header: str | None, method: str = "INVITE") -> Decision:
        return auth.authenticate(
            method=method, source_ip=SOURCE, authorization=header, directory=directory
        )

    cause = _cause
    good = digest.build_authorization(
        username="pub1", password=PASSWORD, realm=REALM,
        nonce=_nonce(auth.challenge(source_ip=SOURCE)), method="INVITE", uri=R_URI,
        algorithm="MD5", nc=1,
    )  # fmt: skip
    md5_only = Authenticator(realm=REALM, secret=SECRET, clock=clock, algorithms=("MD5",))
    stranger = Authenticator(realm=REALM, secret=b"some-other-deployment-secret", clock=clock)
    causes = [
        cause(raw(None)),
        cause(raw("Digest nonsense")),
        cause(raw(good.partition(", qop=auth")[0])),  # RFC 2069: no qop, nc, cnonce
        cause(raw(good.replace("qop=auth", "qop=auth-int"))),
        cause(raw(good, method="IN VITE")),
        cause(_login(auth, directory, realm="other.example.com")),
        cause(_login(md5_only, directory, algorithm="SHA-256")),
        cause(_login(auth, directory, nonce=_nonce(stranger.challenge(source_ip=SOURCE)))),
        cause(_login(auth, directory, username="nobody")),
        cause(_login(auth, directory, password="wrong")),
    ]
    assert causes == [
        "missing-credentials", "malformed-credentials", "missing-qop", "unsupported-qop",
        "bad-method", "wrong-realm", "unsupported-algorithm", "bad-nonce", "unknown-user",
        "wrong-password",
    ]  # fmt: skip
    # pub1's third failure from SOURCE (max_failures = 3), then this login is blocked
    assert cause(_login(auth, directory, password="wrong")) == "wrong-password"
    assert cause(_login(auth, directory, password="wrong")) == "throttled"
    assert cause(_login(auth, directory)) == "throttled"
    # pub1 from other sources: the sixth failure blocks the username for unknown sources
    for i in range(3):
        assert cause(_login(auth, directory, password="wrong", source=f"192.0.2.{i}")) == (
            "wrong-password" if i < 2 else "throttled-username"
        )
    assert cause(_login(auth, directory, source="192.0.2.9")) == "throttled-username"
    # SOURCE's sixth failure across usernames (nobody, pub1 three times, two here) blocks it
    assert cause(_login(auth, directory, username="x", password="wrong")) == "unknown-user"
    assert cause(_login(auth, directory, username="y", password="wrong")) == "throttled-source"
    assert cause(raw(None)) == "throttled-source"  # refused before any parsing or hashing
    clock.now += 60
    nonce = _nonce(auth.challenge(source_ip=SOURCE))
    assert isinstance(_login(auth, directory, nonce=nonce), Accepted)
    assert cause(_login(auth, directory, nonce=nonce)) == "nonce-count-reused"
    clock.now += 301
    assert cause(_login(auth, directory, nonce=nonce, nc=2)) == "stale-nonce"
    assert set(causes) | {
        "throttled", "throttled-username", "throttled-source", "nonce-count-reused", "stale-nonce"
    } == set(CAUSES)  # fmt: skip
