"""What network admins change (SPEC §5), shared by the admin HTTP API and the CLI verbs.

Every change validates with the ``rtbridge apply`` rules (:mod:`rtbridge.config.schema`),
writes, records an audit entry and bumps the configuration version in one transaction, so
the running SIP agents and API workers reload within a second."""
