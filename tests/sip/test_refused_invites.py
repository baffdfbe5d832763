"""Keys of INVITEs refused with no transaction, and how long they are kept."""

from __future__ import annotations

from rtbridge.sip.refused_invites import RefusedInvites, transaction_key

INVITE = (
    "INVITE sip:u@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK-abc;received=10.0.0.1\r\n"
    "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-lower\r\n"
    "Call-ID: c-1@host\r\nCSeq: 1 INVITE\r\n\r\n"
)


def test_the_key_is_the_top_branch_and_the_call_id() -> None:
    assert transaction_key(INVITE) == "z9hG4bK-abc c-1@host"
    compact = "INVITE sip:u@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK-x\r\ni: c-2\r\n\r\n"
    assert transaction_key(compact) == "z9hG4bK-x c-2"
    assert transaction_key("INVITE sip:u@h SIP/2.0\r\nCall-ID: c\r\n\r\n") is None


def test_kept_for_32_seconds_and_at_most_the_limit() -> None:
    kept = RefusedInvites(keep=32.0, limit=2)
    assert not kept
    kept.remember("a", now=100.0)
    assert kept.refused("a", now=131.9) and not kept.refused("a", now=132.0)
    kept.remember("b", now=101.0)
    kept.remember("c", now=102.0)  # over the limit: the oldest goes
    assert not kept.refused("a", now=102.0) and kept.refused("c", now=102.0)
    kept.remember("d", now=200.0)  # the expired ones go as new ones come
    assert [k for k in "abcd" if kept.refused(k, now=200.0)] == ["d"]
