"""Every test that runs an agent fails on an error the agent logged (error_watch.py)."""

from tests.sip.error_watch import agent_errors  # noqa: F401
