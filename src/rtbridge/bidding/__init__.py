"""Real-time bids from RTB buyers: the wire formats (pure) and the HTTP client that asks."""
