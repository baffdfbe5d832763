"""The site's signed recording links (``domain/recording_links.py``): the key derived from
the site key, the lifetime and base address from the settings. One place, for the route
that checks links and for the webhook sender that makes them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from rtbridge.domain.recording_links import RecordingLinks
from rtbridge.settings import Settings
from rtbridge.storage import sitekey


def for_site(engine: Engine, settings: Settings) -> RecordingLinks | None:
    """None without a site key (PostgreSQL without ``RTBRIDGE_SITE_KEY``): then webhooks
    carry no link (``url`` null) rather than one signed under a key no other process has."""
    try:
        key = sitekey.for_engine(engine)
    except sitekey.SiteKeyError:
        return None
    return RecordingLinks(
        key.recording_links, timedelta(days=settings.recording_link_days), settings.public_url or ""
    )
