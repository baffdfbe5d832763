"""Signed, expiring links to one call's recording (issue 24): what a ``recording.completed``
webhook carries, so a buyer's system can fetch the file without any admin token.

A link is ``/recordings/<uuid>.wav?expires=<unix seconds>&sig=<hex>``, where ``sig`` is
HMAC-SHA256 over ``"<uuid>\\n<expires>"`` under a key derived from the site key
(``storage/sitekey.py``: ``SiteKey.recording_links``). The expiry is inside the MAC, so it
cannot be stretched; the uuid is, so a link opens one file only. Nothing is stored: a link
is checked by recomputing it, and changing the site key voids every link at once."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

PATH = "/recordings/{uuid}.wav"


@dataclass(frozen=True)
class RecordingLinks:
    """Makes and checks links under ``key``; ``lifetime``: how long one stays valid;
    ``base``: the service's public address (``--public-url``), "" for a path alone."""

    key: bytes
    lifetime: timedelta = timedelta(days=7)
    base: str = ""

    def signature(self, uuid: str, expires: int) -> str:
        return hmac.new(self.key, f"{uuid}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def expiry(self, start: datetime) -> int:
        """When a link made at ``start`` (the event's time, so every attempt of one webhook
        delivery carries the same link) stops working, in Unix seconds."""
        return int((start + self.lifetime).timestamp())

    def path(self, uuid: str, start: datetime) -> str:
        expires = self.expiry(start)
        query = urlencode({"expires": expires, "sig": self.signature(uuid, expires)})
        return f"{PATH.format(uuid=uuid)}?{query}"

    def url(self, uuid: str, start: datetime) -> str:
        return self.base + self.path(uuid, start)

    def valid(self, uuid: str, expires: str, sig: str, now: datetime) -> bool:
        """The link's signature is right and it has not expired."""
        if not expires.isdigit() or len(expires) > 12:
            return False
        right = self.signature(uuid, int(expires))
        return hmac.compare_digest(right, sig) and int(expires) > now.timestamp()
