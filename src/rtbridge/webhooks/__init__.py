"""Webhooks: publishers' and buyers' reservation events POSTed to their URLs, signed,
persisted before they are sent and retried until a 2xx (docs/webhooks.md).

``signing`` (pure: secrets and signatures), ``events`` (names and bodies), ``outbox``
(storage: events → deliveries, claims, outcomes), ``subscriptions`` (the admin service
layer), ``sender`` (the loop that delivers)."""
