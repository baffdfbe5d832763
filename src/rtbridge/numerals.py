"""Integers written in text that came from outside: path ids, query limits, form fields,
cursors, header values.

``str.isdigit`` is the wrong test before ``int()``: it is true for ``"²"`` (``int`` raises,
and a handler answered 500 for ``/admin/webhooks/%C2%B2``) and for ``"٣"`` (``int`` reads 3).
Only ASCII digits are read here, and at most 18 of them: every value fits a 64-bit database
column (a longer one made SQLite raise ``OverflowError``) and stays far below Python's
4300-digit limit for ``int()`` of a string (``ValueError``)."""

from __future__ import annotations

import re

MAX_DIGITS = 18  # 10**18 - 1 < 2**63 - 1: fits BIGINT and SQLite's INTEGER

_SIGNED = re.compile(r"[+-]?[0-9]{1,18}")


def is_digits(text: str) -> bool:
    """1 to 18 ASCII digits, nothing else (no sign, no space)."""
    return 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()


def as_int(text: str, *, signed: bool = False) -> int | None:
    """``text`` as an integer when it is 1 to 18 ASCII digits (after an optional ``+`` or
    ``-`` when ``signed``), else None: the caller passes the text on for its rule to refuse
    by name, or answers 404."""
    if signed:
        return int(text) if _SIGNED.fullmatch(text) else None
    return int(text) if is_digits(text) else None


def int_or_text(text: str, *, signed: bool = False) -> int | str:
    """:func:`as_int`, or ``text`` unchanged for the field's rule to refuse by name
    (``limit: must be an integer``)."""
    value = as_int(text, signed=signed)
    return text if value is None else value
