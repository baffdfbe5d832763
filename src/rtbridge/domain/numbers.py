"""Phone-number normalisation to E.164 (ITU-T E.164: at most 15 digits after the '+')."""

from __future__ import annotations

import re

from rtbridge.domain.errors import InvalidInput

# Separators people and platforms put into numbers: "+1 (202) 555-0102", "202.555.0102".
_SEPARATORS = re.compile(r"[\s\-().]")
_DIGITS = re.compile(r"\+?[0-9]+")
_MAX_RAW = 40  # refuse before any regex work: a 5,000-digit "number" is not worth parsing
_MIN_DIGITS = 7
_MAX_DIGITS = 15
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def normalise_e164(raw: str, *, field: str) -> str:
    """Return ``raw`` as ``+<digits>`` or raise :class:`InvalidInput` naming ``field``.

    Ten digits are a North American number without its country code (``2025550102``), and
    eleven digits starting with 1 are NANP with it (``12025550102``): that is how US call
    platforms send caller ids. Anything else without ``+`` is read as international digits.
    A leading space stands for ``+``: in a query string an unescaped ``+`` arrives as a space.
    """
    if not isinstance(raw, str):
        raise InvalidInput(f"{field}: must be a string")
    if raw[:1] == "+" and _E164.fullmatch(raw):  # normalised already: most callers send it so
        return raw
    if len(raw) > _MAX_RAW:
        raise InvalidInput(f"{field}: not an E.164 number (too long)")
    compact = _SEPARATORS.sub("", raw)
    if not _DIGITS.fullmatch(compact):
        raise InvalidInput(f"{field}: not an E.164 number (digits and an optional leading + only)")
    explicit_plus = compact.startswith("+") or raw[:1] == " "
    digits = compact.lstrip("+")
    if not explicit_plus and len(digits) == 10 and digits[0] in "23456789":
        digits = "1" + digits
    if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        raise InvalidInput(
            f"{field}: not an E.164 number ({_MIN_DIGITS} to {_MAX_DIGITS} digits expected)"
        )
    if digits[0] == "0":
        raise InvalidInput(f"{field}: not an E.164 number (country code cannot start with 0)")
    return "+" + digits


def is_e164(value: str) -> bool:
    """True when ``value`` is already normalised (``+`` then 7-15 digits, no leading 0)."""
    return _E164.fullmatch(value) is not None
