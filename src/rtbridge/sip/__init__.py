"""The SIP user agent (pjsua2 is imported only inside this package) and sender authentication."""
