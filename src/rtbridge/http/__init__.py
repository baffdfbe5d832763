"""The Starlette app: publisher API (``publisher``), health and metrics (``health``)."""
