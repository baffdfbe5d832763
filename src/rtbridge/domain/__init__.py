"""Reservation rules, free of HTTP, SIP and SQL so they can be tested directly."""
