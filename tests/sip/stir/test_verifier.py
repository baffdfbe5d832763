"""Verifying a call's SHAKEN Identity header end to end (sip/stir/verifier.py), against a
test STI-CA and its x5u server on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from rtbridge.domain.attestation import meets
from rtbridge.sip.stir import LEVELS, Attestation, Verifier
from tests.support.stir import DEST, ORIG, Signer, Sti, StiCa, issue


def verify(
    world: Sti, identity: str, verifier: Verifier | None = None, **numbers: str | None
) -> Attestation:
    call = {"orig": ORIG, "dest": DEST} | numbers
    return (verifier or world.verifier()).verify([identity], **call)


@pytest.mark.parametrize("level", LEVELS)
def test_a_valid_token_yields_its_level_and_origid(world: Sti, level: str) -> None:
    origid = "8f1a3c51-6e2f-4f0e-9e39-7a9f2d4a1b2c"
    assert verify(world, world.signer.sign(level, origid=origid)) == Attestation(
        level, origid=origid, source="identity"
    )


def test_no_identity_header_is_none(world: Sti) -> None:
    assert world.verifier().verify([], orig=ORIG, dest=DEST) == Attestation("none")


def test_numbers_compare_as_digits(world: Sti) -> None:
    identity = world.signer.sign(dest=["18005550000", "+1 (833) 951-0260"])
    assert verify(world, identity, orig="1-312-555-0100", dest="18339510260").level == "A"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"tamper": True}, "bad signature"),
        ({"age": 61}, "iat 61 s old"),
        ({"age": -61}, "iat 61 s in the future"),
        ({"dest": "+18339510261"}, "dest does not match"),
        ({"orig": "+13125550101"}, "orig does not match"),
        ({"orig": "+3125550100"}, "orig does not match"),  # no country-code leniency
        ({"attest": "D"}, "attest is not A, B or C"),
        ({"header": {"typ": "JWT"}}, "PASSporT typ is not passport"),
        ({"header": {"ppt": "div"}}, "PASSporT ppt is not shaken"),
        ({"header": {"x5u": None}}, "PASSporT has no x5u"),
        ({"claims": {"origid": None}}, "PASSporT has no origid"),
        ({"claims": {"iat": "now"}}, "iat is not a number"),
        ({"claims": {"dest": {"tn": "18339510260"}}}, "dest has no tn list"),
        (
            {"params": ";info=<https://elsewhere.example/c.pem>;ppt=shaken"},
            "info does not match x5u",
        ),
    ],
)
def test_a_token_that_does_not_hold_fails_with_its_reason(
    world: Sti, change: dict, why: str
) -> None:
    assert verify(world, world.signer.sign(**change)) == Attestation("failed", why=why)


def test_max_age_is_configurable(world: Sti) -> None:
    now = float(int(time.time()))
    identity = world.signer.sign(iat=now, age=90)
    assert verify(world, identity, world.verifier(max_age=120, clock=lambda: now)).level == "A"
    assert verify(world, identity, world.verifier(clock=lambda: now)).why == "iat 90 s old"


def test_the_verifiers_clock_decides_freshness(world: Sti) -> None:
    identity = world.signer.sign(iat=1_000_000)
    assert verify(world, identity, world.verifier(clock=lambda: 1_000_030)).why is not None
    assert verify(world, identity, world.verifier(clock=lambda: 1_000_075)).why == "iat 75 s old"


@pytest.mark.parametrize(
    ("numbers", "why"), [({"orig": None}, "no caller number"), ({"dest": None}, "no called number")]
)
def test_missing_call_numbers_fail(world: Sti, numbers: dict, why: str) -> None:
    assert verify(world, world.signer.sign(), **numbers).why == why


def test_a_chain_from_an_unknown_ca_fails(world: Sti) -> None:
    stranger = StiCa("Unknown")
    signer = world.publish("/unknown.pem", stranger.leaf(), stranger)
    assert verify(world, signer.sign()).why == "unknown CA"


def test_a_leaf_without_its_intermediate_fails(world: Sti) -> None:
    url = world.server.serve("/leaf-only.pem", world.leaf.pem)
    assert verify(world, Signer(world.leaf.key, url).sign()).why == "unknown CA"


def test_an_expired_leaf_fails(world: Sti) -> None:
    signer = world.publish("/expired.pem", world.ca.leaf(days=(-30, -1)))
    assert verify(world, signer.sign()).why == "leaf certificate expired"


def test_an_expired_intermediate_fails(world: Sti, tmp_path: Path) -> None:
    old = StiCa("Old")
    old.intermediate = issue("Old Intermediate", issuer=old.root, ca=True, days=(-30, -1))
    roots = old.write_roots(tmp_path / "old-roots.pem")
    signer = world.publish("/old.pem", old.leaf(), old)
    result = verify(world, signer.sign(), world.verifier(roots_file=roots))
    assert result.why == "intermediate certificate expired or not yet valid"


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (ed25519.Ed25519PrivateKey.generate(), "leaf key is not EC P-256"),
        (ec.generate_private_key(ec.SECP384R1()), "leaf key is not EC P-256"),
    ],
)
def test_a_leaf_key_other_than_p256_fails(
    world: Sti, key: ec.EllipticCurvePrivateKey, why: str
) -> None:
    signer = world.publish("/odd-key.pem", world.ca.leaf(key=key))
    identity = (
        signer.sign()
        if isinstance(key, ed25519.Ed25519PrivateKey)
        else world.signer.sign(header={"x5u": signer.x5u}, params=f";info=<{signer.x5u}>")
    )
    assert verify(world, identity).why == why


def test_a_leaf_without_tn_auth_list_fails(world: Sti) -> None:
    signer = world.publish("/no-tnauth.pem", world.ca.leaf(tn_auth=False))
    assert verify(world, signer.sign()).why == "leaf has no TNAuthList"


def test_a_token_signed_by_another_key_than_the_leafs_fails(world: Sti) -> None:
    forger = Signer(ec.generate_private_key(ec.SECP256R1()), world.x5u)
    assert verify(world, forger.sign()).why == "bad signature"


def test_no_roots_configured_fails_every_token_without_a_fetch(world: Sti) -> None:
    verifier = world.verifier(roots_file=None)
    assert verify(world, world.signer.sign(), verifier).why == "no STI-CA roots configured"
    assert verify(world, "garbage", verifier).why == "no STI-CA roots configured"
    assert world.server.fetches == {}


def test_an_unreadable_roots_file_raises_at_start_up(world: Sti, tmp_path: Path) -> None:
    with pytest.raises(OSError):
        world.verifier(roots_file=str(tmp_path / "missing.pem"))


def test_a_stale_token_costs_no_fetch(world: Sti) -> None:
    verify(world, world.signer.sign(age=600))
    verify(world, world.signer.sign(dest="+15555550000"))
    assert world.server.fetches == {}


@pytest.mark.parametrize(
    ("level", "minimum", "expected"),
    [("A", "A", True), ("A", "C", True), ("B", "A", False), ("B", "B", True), ("C", "B", False),
     ("none", "C", False), ("failed", "C", False), ("failed", None, True), ("C", None, True)],
)  # fmt: skip
def test_a_minimum_admits_its_level_and_better(
    level: str, minimum: str | None, expected: bool
) -> None:
    """The one comparison of levels, the router's (domain/attestation.meets)."""
    assert meets(level, minimum) is expected
