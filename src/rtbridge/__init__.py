"""rtbridge: pay-per-call real-time bidding — the reservation API and the SIP agent.

Layout (one room per concern):
- ``domain``  — reservation rules as plain Python (numbers, buyer selection, hours, inbound choice).
- ``storage`` — SQLModel tables, engine, Alembic migrations, the transactional operations.
- ``config``  — the declarative TOML file: validation and ``apply``.
- ``http``    — the Starlette app: publisher API, health, metrics.
- ``sip``     — the pjsua2 agent and digest authentication (pjsua2 is imported only there).
- ``cli``     — the ``rtbridge`` console script.
"""

__version__ = "0.1.0"
