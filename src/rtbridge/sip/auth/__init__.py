"""Who sent an INVITE: IP allowlists, SIP digest (RFC 7616/8760), signed nonces, failure
throttling. Pure Python — nothing here imports pjsua2, so every rule is unit-tested alone
and reused by the admin dry-run check (``rtbridge check``)."""
