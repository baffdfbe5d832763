"""The publisher API (SPEC §3): ``POST /rtbs.json`` and the look-up, confirm and cancel of a
reservation; its response models and OpenAPI description."""
