"""The admin API (SPEC §5): token-authenticated JSON over the admin service layer
(:mod:`rtbridge.admin`), the RTB and call logs, their models and OpenAPI description."""
