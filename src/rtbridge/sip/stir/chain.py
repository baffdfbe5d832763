"""Whether an x5u chain leads to a configured STI-CA root (ATIS-1000080), and the leaf's key.

Path building and checking is ``cryptography.x509.verification``'s (chaining by name and
key identifier, every signature, every certificate's validity at ``now``, CA certificates'
basicConstraints and keyUsage, path length and name constraints, a depth bound) rather than
a hand-written walk with ``verify_directly_issued_by``. Measured with tests/support/stir.py's
STI-CA: its client verifier refuses a SHAKEN leaf as it comes — "Certificate is missing
required extension: subjectAltName": STI certificates name no host, they carry a TNAuthList
(1.3.6.1.5.5.7.1.26) — and accepts it once the end-entity extension policy is
``ExtensionPolicy.permit_all()``; CA certificates keep the Web PKI defaults. What the Web PKI
policy would have said of the leaf is said here instead, as SHAKEN has it: an EC P-256 key,
a TNAuthList, not a CA."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification

from rtbridge.sip.stir.attestation import Failed

TN_AUTH_LIST = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26")  # RFC 8226


def load_roots(path: str) -> list[x509.Certificate]:
    """The STI-CA roots of a PEM bundle (unreadable or malformed: raises, at start-up)."""
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


_GOOD_FOR = 3600.0  # seconds a chain's verdict is reused at most (roots may change with a restart)
_BAD_FOR = 60.0  # a refused chain's, as a failed fetch's
_MAX_VERDICTS = 1000

Verdict = tuple[float, "ec.EllipticCurvePublicKey | Failed"]  # (good until, key or why not)


class Roots:
    """Thread-safe: the verdicts are a dict written whole (the GIL's), and two threads that
    race on one chain both compute the same verdict."""

    def __init__(self, certificates: list[x509.Certificate]) -> None:
        self._store = verification.Store(certificates) if certificates else None
        # chain (its certificates' signatures) -> verdict: path building costs ~0.2 ms, more
        # than the rest of a verification; a chain is the same for every call it signs
        self._verdicts: dict[tuple[bytes, ...], Verdict] = {}

    def check_configured(self) -> None:
        if self._store is None:
            raise Failed("no STI-CA roots configured")

    def leaf_key(self, chain: list[x509.Certificate], now: float) -> ec.EllipticCurvePublicKey:
        """The key of ``chain``'s leaf, when the chain leads to a root and the leaf is an
        STI certificate valid at ``now``; else Failed. A chain's verdict is kept until its
        first certificate expires (an hour at most; a refusal a minute)."""
        self.check_configured()
        memo = tuple(c.signature for c in chain)
        found = self._verdicts.get(memo)
        if found is not None and now < found[0]:
            if isinstance(found[1], Failed):
                raise found[1]
            return found[1]
        try:
            key = self._leaf_key(chain, now)
        except Failed as refused:
            self._keep(memo, (now + _BAD_FOR, refused))
            raise
        ends = min(c.not_valid_after_utc for c in chain).timestamp()
        self._keep(memo, (min(now + _GOOD_FOR, ends), key))
        return key

    def _keep(self, memo: tuple[bytes, ...], verdict: Verdict) -> None:
        if len(self._verdicts) >= _MAX_VERDICTS:
            self._verdicts = {}  # rare: as many chains as a cache holds URLs
        self._verdicts[memo] = verdict

    def _leaf_key(self, chain: list[x509.Certificate], now: float) -> ec.EllipticCurvePublicKey:
        assert self._store is not None
        leaf, intermediates = chain[0], chain[1:]
        when = datetime.datetime.fromtimestamp(now, datetime.UTC)
        if when > leaf.not_valid_after_utc:
            raise Failed("leaf certificate expired")
        if when < leaf.not_valid_before_utc:
            raise Failed("leaf certificate not yet valid")
        try:
            key = _sti_key(leaf)
        except ValueError:  # an extension that does not parse, or one twice
            raise Failed("leaf certificate malformed") from None
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(when)
            .max_chain_depth(4)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, intermediates)
        except verification.VerificationError as exc:
            raise Failed(_reason(str(exc), intermediates, when)) from None
        return key


def _sti_key(leaf: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise Failed("leaf key is not EC P-256")
    extensions = {extension.oid for extension in leaf.extensions}
    if TN_AUTH_LIST not in extensions:
        raise Failed("leaf has no TNAuthList")
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise Failed("leaf is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    return key


def _reason(message: str, intermediates: list[x509.Certificate], when: datetime.datetime) -> str:
    """A verifier's message, short. No path to a root is an unknown CA — unless an
    intermediate sent is out of its validity: the path builder skips such a candidate
    without a word, and "unknown CA" would send whoever reads the log to the wrong place."""
    if "candidates exhausted" in message:
        if any(not c.not_valid_before_utc <= when <= c.not_valid_after_utc for c in intermediates):
            return "intermediate certificate expired or not yet valid"
        return "unknown CA"
    message = message.removeprefix("validation failed: ").split(" (encountered", 1)[0]
    return f"certificate chain invalid: {message[:80]}"
