"""Digest arithmetic and header syntax, against the RFCs' own examples."""

from __future__ import annotations

import dataclasses
import random
import string

import pytest

from rtbridge.sip.auth import digest
from rtbridge.sip.auth.digest import DigestCredentials, DigestSyntaxError

# RFC 7616 §3.9.1: GET /dir/index.html, user Mufasa, password "Circle of Life".
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

# RFC 2617 §3.5: same user, password "Circle Of Life" (capital O), MD5.
RFC2617_HEADER = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def _rfc7616_header(algorithm: str) -> str:
    # The RFC prints the header folded over several lines; a SIP stack hands it over unfolded.
    return (
        f'Digest username="Mufasa", realm="{RFC7616_REALM}", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", nc=00000001, '
        f'cnonce="{RFC7616_CNONCE}", qop=auth, response="{RFC7616_RESPONSES[algorithm]}", '
        f'opaque="{RFC7616_OPAQUE}"'
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_computes(algorithm: str) -> None:
    response = digest.compute_response(
        ha1_hex=digest.ha1("Mufasa", RFC7616_REALM, "Circle of Life", algorithm),
        algorithm=algorithm,
        method="GET",
        uri="/dir/index.html",
        nonce=RFC7616_NONCE,
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert response == RFC7616_RESPONSES[algorithm]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_parses_and_verifies(algorithm: str) -> None:
    credentials = digest.parse_authorization(_rfc7616_header(algorithm))
    assert credentials == DigestCredentials(
        username="Mufasa",
        realm=RFC7616_REALM,
        nonce=RFC7616_NONCE,
        uri="/dir/index.html",
        response=RFC7616_RESPONSES[algorithm],
        algorithm=algorithm,
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
        opaque=RFC7616_OPAQUE,
    )
    good = digest.ha1("Mufasa", RFC7616_REALM, "Circle of Life", algorithm)
    bad = digest.ha1("Mufasa", RFC7616_REALM, "Circle Of Life", algorithm)
    assert digest.verify_response(credentials, ha1_hex=good, method="GET")
    assert not digest.verify_response(credentials, ha1_hex=bad, method="GET")
    assert not digest.verify_response(credentials, ha1_hex=good, method="POST")


def test_rfc2617_example() -> None:
    credentials = digest.parse_authorization(RFC2617_HEADER)
    assert credentials.algorithm == "MD5"  # absent means MD5
    assert credentials.nonce_count == 1
    ha1 = digest.ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
    assert digest.verify_response(credentials, ha1_hex=ha1, method="GET")


def test_rfc2069_form_computes_without_qop() -> None:
    # H(HA1:nonce:HA2) — computed for completeness; the authenticator refuses it (no nc).
    ha1 = digest.ha1("u", "r", "p", "MD5")
    ha2 = digest._hash("MD5", "INVITE:sip:x@r")
    assert digest.compute_response(
        ha1_hex=ha1, algorithm="MD5", method="INVITE", uri="sip:x@r", nonce="n"
    ) == digest._hash("MD5", f"{ha1}:n:{ha2}")
    header = digest.build_authorization(
        username="u", password="p", realm="r", nonce="n", method="INVITE", uri="sip:x@r", qop=None
    )
    credentials = digest.parse_authorization(header)
    assert credentials.qop is None and credentials.nc is None and credentials.nonce_count is None
    assert digest.verify_response(credentials, ha1_hex=ha1, method="INVITE")


def test_uppercase_hex_response_and_tokens_are_accepted() -> None:
    header = digest.build_authorization(
        username="u", password="p", realm="r", nonce="n", method="INVITE", uri="sip:x@r"
    )
    scheme_upper = header.replace("Digest", "DIGEST").replace("algorithm=MD5", "ALGORITHM=md5")
    response = digest.parse_params(header)[1]["response"]
    shouted = scheme_upper.replace(response, response.upper()).replace("qop=auth", 'qop="auth"')
    credentials = digest.parse_authorization(shouted)
    assert credentials.algorithm == "MD5"
    assert credentials.qop == "auth"
    assert digest.verify_response(
        credentials, ha1_hex=digest.ha1("u", "r", "p", "MD5"), method="INVITE"
    )


def test_sipp_style_header_without_spaces() -> None:
    # Exactly the shape SIPp 3.6 sends (no blanks after commas, qop and nc unquoted).
    header = (
        'Digest username="pub1",realm="sip.rtb.example.com",cnonce="6b8b4567",nc=00000001,'
        'qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",'
        'response="d51ddfc3f5ee8ca5aa9ee568e91728d9",algorithm=MD5'
    )
    credentials = digest.parse_authorization(header)
    assert credentials.uri == "sip:127.0.0.1:5060"
    assert credentials.cnonce == "6b8b4567"


def test_quoted_string_escapes_round_trip() -> None:
    realm = 'odd "realm" \\ here'
    challenge = digest.build_challenge(realm=realm, nonce="n1", algorithm="SHA-256", stale=True)
    scheme, params = digest.parse_params(challenge)
    assert scheme == "Digest"
    assert params == {
        "realm": realm,
        "nonce": "n1",
        "algorithm": "SHA-256",
        "qop": "auth",
        "stale": "true",
    }


def test_build_challenge_shape() -> None:
    assert digest.build_challenge(realm="sip.example.com", nonce="abc", algorithm="MD5") == (
        'Digest realm="sip.example.com", nonce="abc", algorithm=MD5, qop="auth"'
    )
    with pytest.raises(ValueError, match="unsupported"):
        digest.build_challenge(realm="r", nonce="n", algorithm="SHA-512-256")


def test_ha1_rejects_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        digest.ha1("u", "r", "p", "MD5-sess")


def test_unknown_algorithm_is_parsed_but_never_verifies() -> None:
    header = _rfc7616_header("MD5").replace("algorithm=MD5", "algorithm=sha-512-256")
    credentials = digest.parse_authorization(header)
    assert credentials.algorithm == "SHA-512-256"
    assert not digest.is_supported(credentials.algorithm)
    assert not digest.verify_response(credentials, ha1_hex="0" * 32, method="GET")


def test_empty_list_elements_are_tolerated() -> None:
    assert digest.parse_params('Digest ,a=1,, b="2" ,') == ("Digest", {"a": "1", "b": "2"})


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "no scheme"),
        ("   ", "no scheme"),
        ("Basic dXNlcjpwYXNz", "without a value"),
        ('Basic realm="x"', "not Digest"),
        ("Digest", "lacks"),
        ('Digest username="u"', "lacks"),
        ('Digest username="u", realm="r", nonce="n", response="00"', "lacks uri"),
        ('Digest username="u" realm="r"', "separated by commas"),
        ('Digest username="u', "unterminated"),
        ('Digest username="u\\', "unterminated"),
        ("Digest username", "without a value"),
        ("Digest username=", "empty value"),
        ("Digest =x", "not a token"),
        ('Digest username="a", username="b"', "repeated"),
        ("Dig(est a=b", "not a token"),
        ("Digest a=b\r\nVia: x", "control"),
        ("Digest a=\x00", "control"),
        ("Digest a=\u00e9", "non-ASCII"),
        ("Digest a=" + "x" * 5000, "too long"),
    ],
)
def test_malformed_syntax(header: str, message: str) -> None:
    with pytest.raises(DigestSyntaxError, match=message):
        digest.parse_authorization(header)


def _fields(**overrides: str | None) -> str:
    values: dict[str, str | None] = {
        "username": '"u"',
        "realm": '"r"',
        "nonce": '"n"',
        "uri": '"sip:x@r"',
        "response": '"' + "a" * 32 + '"',
        "algorithm": "MD5",
        "qop": "auth",
        "nc": "00000001",
        "cnonce": '"c"',
    }
    values.update(overrides)
    return "Digest " + ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"username": None}, "lacks username"),
        ({"username": '""'}, "lacks username"),
        ({"nonce": None, "uri": None}, "lacks nonce, uri"),
        ({"response": '"zz"'}, "not hexadecimal"),
        ({"response": '"' + "a" * 31 + '"'}, "wrong length"),
        ({"algorithm": "SHA-256"}, "wrong length"),
        ({"nc": None}, "qop needs nc and cnonce"),
        ({"cnonce": None}, "qop needs nc and cnonce"),
        ({"cnonce": '""'}, "qop needs nc and cnonce"),
        ({"qop": None}, "nc and cnonce need qop"),
        ({"nc": "1"}, "8 hexadecimal digits"),
        ({"nc": "0000000g"}, "8 hexadecimal digits"),
        ({"nc": "000000001"}, "8 hexadecimal digits"),
        ({"userhash": "true"}, "userhash"),
        ({"username*": "UTF-8''M%C3%BCller"}, "userhash and username"),
    ],
)
def test_malformed_fields(overrides: dict[str, str | None], message: str) -> None:
    with pytest.raises(DigestSyntaxError, match=message):
        digest.parse_authorization(_fields(**overrides))


def test_well_formed_fields_baseline() -> None:
    credentials = digest.parse_authorization(_fields(userhash="false", nc="0000000A"))
    assert credentials.nc == "0000000a"
    assert credentials.nonce_count == 10


def test_error_messages_never_echo_input() -> None:
    secret_looking = "hunter2-" * 10
    for header in (f"Digest {secret_looking}", f'Digest a="{secret_looking}', secret_looking):
        with pytest.raises(DigestSyntaxError) as caught:
            digest.parse_authorization(header)
        assert "hunter2" not in str(caught.value)


_ALPHABET = string.ascii_letters + string.digits + " \t=,\"\\/:@;.-_*!%~+`'" + "\x00\r\n\u00e9"


def _garbage(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 200)))
    base = _fields() if kind == 1 else RFC2617_HEADER
    chars = list(base)
    for _ in range(rng.randrange(1, 6)):
        position = rng.randrange(len(chars) + 1)
        operation = rng.randrange(3)
        if operation == 0 and chars:
            del chars[min(position, len(chars) - 1)]
        elif operation == 1:
            chars.insert(position, rng.choice(_ALPHABET))
        else:
            chars = chars[:position]
    return "".join(chars)


def test_random_garbage_never_raises_anything_but_syntax_errors() -> None:
    rng = random.Random(20240611)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(5000):
        header = _garbage(rng)
        try:
            credentials = digest.parse_authorization(header)
        except DigestSyntaxError:
            outcomes["refused"] += 1
            continue
        outcomes["parsed"] += 1
        # Whatever parsed must be safe to verify too.
        assert isinstance(
            digest.verify_response(credentials, ha1_hex="0" * 64, method="INVITE"), bool
        )
    assert outcomes["parsed"] > 0 and outcomes["refused"] > 0


def test_every_truncation_of_a_valid_header_is_refused_or_whole() -> None:
    """A cut header is refused, except where the cut only loses ``opaque`` (after the last
    field a digest needs): then it parses to the same credentials, never to a cut value."""
    whole = digest.parse_authorization(RFC2617_HEADER)
    cut = RFC2617_HEADER.index(", opaque=")
    parsed = []
    for end in range(len(RFC2617_HEADER)):
        try:
            credentials = digest.parse_authorization(RFC2617_HEADER[:end])
        except DigestSyntaxError:
            continue
        parsed.append(end)
        assert dataclasses.replace(credentials, opaque=whole.opaque) == whole, end
    assert parsed == [cut, cut + 1, cut + 2]  # '…"', '…",', '…", '


def test_same_digest() -> None:
    assert digest.same_digest("ABCDEF", "abcdef")
    assert not digest.same_digest("abcdef", "abcdee")
    assert not digest.same_digest("abc", "abcd")
