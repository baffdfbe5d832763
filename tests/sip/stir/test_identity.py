"""Reading Identity header values (sip/stir/identity.py), and the verifier on garbage."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtbridge.sip.stir.attestation import Failed
from rtbridge.sip.stir.identity import choose, parse
from rtbridge.sip.stir.verifier import INTERNAL
from tests.support.stir import DEST, ORIG, Sti

JWS = "eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.c2ln"
INFO = "https://cert.example.org/passport.pem"


def why(values: list[str]) -> str:
    with pytest.raises(Failed) as caught:
        choose(values)
    return caught.value.why


@pytest.mark.parametrize(
    "value",
    [f"{JWS};info=<{INFO}>;alg=ES256;ppt=shaken", f"  {JWS} ; ppt = shaken ;alg=ES256; info = <{INFO}> ",
     f"{JWS};PPT=shaken;INFO=<{INFO}>", f"{JWS};info=<{INFO}>;ppt=\"shaken\";x-extra=1"],
)  # fmt: skip
def test_parameters_in_any_order_and_spacing(value: str) -> None:
    identity = choose([value])
    assert (identity.jws, identity.info, identity.ppt()) == (JWS, INFO, "shaken")


def test_the_shaken_header_is_chosen_among_several(world: Sti) -> None:
    shaken = world.signer.sign()
    div = f"{JWS};info=<{INFO}>;ppt=div"
    assert choose([div, shaken]).jws == shaken.split(";")[0]
    assert choose([f"{div}, {shaken}"]).jws == shaken.split(";")[0]  # one field, comma-joined
    assert choose(["garbage", shaken]).jws == shaken.split(";")[0]


def test_the_passport_headers_ppt_counts_without_the_parameter(world: Sti) -> None:
    bare = world.signer.sign(params=f";info=<{world.x5u}>")
    assert choose([bare]).ppt() == "shaken"
    assert (
        why([world.signer.sign(header={"ppt": "div"}, params=f";info=<{world.x5u}>")])
        == "no SHAKEN Identity header"
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [([f"eyJhbGciOiJFUzI1NiJ9..c2ln;info=<{INFO}>;ppt=shaken"], "compact form not supported"),
     ([f"{JWS};info=<{INFO}>;ppt=shaken" + " " * 9000], "Identity header too long"),
     ([f"{JWS};info={INFO};ppt=shaken"], "Identity info is not in angle brackets"),
     ([f"{JWS};info=\"{INFO}\";ppt=shaken"], "Identity info is not in angle brackets"),
     ([f"{JWS};ppt=shaken"], "Identity has no info parameter"),
     ([f"{JWS};info=<{INFO}>;alg=RS256;ppt=shaken"], "Identity alg RS256 is not ES256"),
     (["not a jws;ppt=shaken"], "Identity is not a JWS"), ([""] , "no SHAKEN Identity header"),
     ([f"{JWS};info=<{INFO}>;ppt=shaken"] * 9, "more than 8 Identity headers"),
     ([f"!!!.eyJhIjoxfQ.c2ln;info=<{INFO}>"], "Identity is not a JWS"),
     ([f"e30.eyJhIjoxfQ.c2ln;info=<{INFO}>"], "no SHAKEN Identity header"),
     ([f"bm90IGpzb24.eyJhIjoxfQ.c2ln;info=<{INFO}>"], "PASSporT header is not base64url JSON")],
)  # fmt: skip
def test_malformed_values_fail_with_their_reason(values: list[str], reason: str) -> None:
    assert why(values) == reason


def test_one_value_over_8_kib_fails_the_call(world: Sti) -> None:
    result = world.verifier().verify(
        [world.signer.sign() + ";x=" + "a" * 8200], orig=ORIG, dest=DEST
    )
    assert result.why == "Identity header too long"


def test_a_parsed_value_keeps_unknown_parameters() -> None:
    assert parse(f"{JWS};info=<{INFO}>;x-carrier=abc").params["x-carrier"] == "abc"


_PIECES = st.sampled_from(
    [JWS, "..", ".", ";", "=", "<", ">", ",", '"', "info", "ppt=shaken", f"<{INFO}>", "alg=ES256", " ",
     "eyJ0eXAiOiJwYXNzcG9ydCJ9", "e30", "\x00", "é", "\r\n", "https://127.0.0.1:1/x"]
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.one_of(st.text(max_size=300), st.lists(_PIECES, max_size=20).map("".join)), max_size=4
    )
)
def test_garbage_never_raises(world: Sti, values: list[str]) -> None:
    result = world.verifier(fetch_timeout=0.2).verify(values, orig=ORIG, dest=DEST)
    assert result.level in ("none", "failed") and result.why != INTERNAL


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "typ", "ppt", "crit", "kid"]), _JSON, max_size=3
    ),
    claims=st.dictionaries(
        st.sampled_from(["attest", "orig", "dest", "iat", "origid"]), _JSON, max_size=3
    ),
)
def test_hostile_passport_fields_never_raise(world: Sti, header: dict, claims: dict) -> None:
    """Validly signed tokens with odd fields: each is refused with a reason, or verifies."""
    identity = world.signer.sign(header=header, claims=claims)
    result = world.verifier().verify([identity], orig=ORIG, dest=DEST)
    assert result.why != INTERNAL
    assert result.level == "failed" or result.level in ("A", "B", "C")
