"""The SIP security suite drives the agent of tests/sip/b2bua with hostile peers
(tests/sip/rawsip.py, SIPVicious): the same fixtures."""

from tests.sip.b2bua.conftest import _reap_sipp, make_agent, sipp  # noqa: F401
