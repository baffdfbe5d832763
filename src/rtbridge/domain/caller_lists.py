"""Block and allow lists of callers (SPEC §3.10) as plain Python: what an entry is, which
entry values a caller matches, and what a caller's matching lists mean for a campaign and
its buyers.

An entry's value is one of three forms, stored and shown as written here:

- a number, in E.164: ``+13125550100`` — matches that caller only;
- a prefix, ``+`` and 1 to 14 digits then ``*``: ``+1900*`` — matches every caller that
  starts with those digits. In a file, a request or a CSV line a bare ``+1900`` (too short
  to be a number: fewer than 7 digits) is read as that prefix; a longer prefix needs its
  ``*`` (``+1900555*``) or a table's ``prefix = "+1900555"``;
- ``anonymous`` — matches a caller with no number (withheld, or not a number at all).

A caller is looked up by equality only: its number, each of its prefixes with a ``*`` of a
length some prefix entry has (at most 14) and ``anonymous`` are the values an index is
asked for (:func:`candidates`), so a list of 10^6 entries costs what a list of ten does."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rtbridge.domain.errors import InvalidInput
from rtbridge.domain.numbers import normalise_e164

ANONYMOUS = "anonymous"
BLOCK = "block"
ALLOW = "allow"
KINDS = (BLOCK, ALLOW)
MAX_PREFIX_DIGITS = 14
_PREFIX = re.compile(r"\+[1-9][0-9]{0,13}")
_SEPARATORS = re.compile(r"[\s\-().]")
_SHORT = 6  # digits a bare "+..." may have and still be a prefix (a number has 7 at least)

# A scope: ("global", ""), ("campaign", id) or ("buyer", id)
Scope = tuple[str, str]
GLOBAL: Scope = ("global", "")


def entry_value(raw: object, *, prefix: bool = False) -> str:
    """``raw`` in its stored form (see the module), or :class:`InvalidInput` saying why.
    ``prefix``: ``raw`` is a prefix's digits whatever their length (a table's ``prefix``)."""
    if not isinstance(raw, str):
        raise InvalidInput("must be a string")
    text = raw.strip()
    if not prefix and text.casefold() == ANONYMOUS:
        return ANONYMOUS
    starred = text.endswith("*")
    digits = _SEPARATORS.sub("", text[:-1] if starred else text)
    if prefix or starred or (digits[:1] == "+" and len(digits) <= _SHORT + 1):
        if not _PREFIX.fullmatch(digits):
            raise InvalidInput(
                f"not a prefix (+ and 1 to {MAX_PREFIX_DIGITS} digits, the first not 0)"
            )
        return digits + "*"
    try:
        return normalise_e164(text, field="number")
    except InvalidInput as exc:
        raise InvalidInput(
            f"{exc.message.removeprefix('number: ')}; an entry is an E.164 number, a prefix "
            "(+1900 or +1900555*) or anonymous"
        ) from None


def candidates(caller: str | None, lengths: Iterable[int] | None = None) -> tuple[str, ...]:
    """Every entry value that matches ``caller`` (E.164, or None: anonymous): its number
    and its prefixes — of these ``lengths`` only (``+1900``: 5) when the lengths entries
    have are known, else of every length."""
    if caller is None:
        return (ANONYMOUS,)
    last = min(len(caller), MAX_PREFIX_DIGITS + 1)
    sizes = range(2, last + 1) if lengths is None else sorted(n for n in lengths if 2 <= n <= last)
    return (caller, *(caller[:n] + "*" for n in sizes))


@dataclass(frozen=True)
class CallerList:
    """One list as the hot paths know it. ``auto_block``: a block list's seconds for which
    the caller of each conversion in its scope is added (None: never)."""

    id: str
    kind: str
    campaign: str | None = None
    buyer: str | None = None
    auto_block: int | None = None

    @property
    def scope(self) -> Scope:
        if self.buyer is not None:
            return ("buyer", self.buyer)
        if self.campaign is not None:
            return ("campaign", self.campaign)
        return GLOBAL


_NONE: frozenset[str] = frozenset()


class CallerLists:
    """Every list, by scope. At each scope a caller is refused when it matches one of the
    scope's block lists, or when the scope has allow lists and it matches none of them: an
    allow list admits only its callers, and a block wins over an allow (a caller on both is
    refused). A campaign's callers meet the global scope, the campaign's and their buyer's.
    ``buyers_of`` (campaign id -> its buyers' ids) says which campaigns a buyer's lists
    concern."""

    def __init__(
        self,
        lists: Mapping[str, CallerList] | None = None,
        buyers_of: Mapping[str, Iterable[str]] | None = None,
        *,
        prefix_lengths: Iterable[int] | None = None,
    ) -> None:
        """``prefix_lengths``: the lengths of the prefix entries there are (None: any)."""
        self.lists: Mapping[str, CallerList] = lists or {}
        self.prefix_lengths = None if prefix_lengths is None else frozenset(prefix_lengths)
        block: dict[Scope, set[str]] = {}
        allow: dict[Scope, set[str]] = {}
        for rule in self.lists.values():
            (block if rule.kind == BLOCK else allow).setdefault(rule.scope, set()).add(rule.id)
        self._block = {scope: frozenset(ids) for scope, ids in block.items()}
        self._allow = {scope: frozenset(ids) for scope, ids in allow.items()}
        scoped = set(block) | set(allow)
        self._buyers = frozenset(b for kind, b in scoped if kind == "buyer")
        self._concerned = frozenset(
            c for c, buyers in (buyers_of or {}).items()
            if GLOBAL in scoped or ("campaign", c) in scoped
            or any(("buyer", b) in scoped for b in buyers)
        )  # fmt: skip

    def __bool__(self) -> bool:
        return bool(self.lists)

    def candidates(self, caller: str | None) -> tuple[str, ...]:
        """The entry values to look ``caller`` up by (:func:`candidates`)."""
        return candidates(caller, self.prefix_lengths)

    def concern(self, campaign_id: str) -> bool:
        """Do any lists apply to this campaign's callers (its own, global or its buyers')?"""
        return campaign_id in self._concerned

    def refuses(self, matched: frozenset[str], scope: Scope) -> bool:
        """Does ``scope`` refuse a caller matching the lists ``matched`` (their ids)?"""
        if matched & self._block.get(scope, _NONE):
            return True
        allow = self._allow.get(scope)
        return allow is not None and not matched & allow

    def refuses_campaign(self, matched: frozenset[str], campaign_id: str) -> bool:
        """Is the caller refused for the whole campaign (global or campaign lists)?"""
        return self.refuses(matched, GLOBAL) or self.refuses(matched, ("campaign", campaign_id))

    def refused_buyers(self, matched: frozenset[str], buyer_ids: Iterable[str]) -> frozenset[str]:
        """Which of these buyers refuse the caller by their own lists."""
        return frozenset(
            b for b in buyer_ids if b in self._buyers and self.refuses(matched, ("buyer", b))
        )

    def refuses_call(self, matched: frozenset[str], campaign_id: str, buyer_id: str) -> bool:
        """Is the caller refused for this campaign's buyer (an INVITE's check)?"""
        return self.refuses_campaign(matched, campaign_id) or bool(
            self.refused_buyers(matched, (buyer_id,))
        )

    def auto_blocking(self, campaign_id: str, buyer_id: str | None) -> list[CallerList]:
        """The block lists that take the caller of a conversion with this campaign's buyer."""
        return [
            rule for rule in self.lists.values()
            if rule.kind == BLOCK and rule.auto_block
            and rule.scope in (GLOBAL, ("campaign", campaign_id), ("buyer", buyer_id or ""))
        ]  # fmt: skip
