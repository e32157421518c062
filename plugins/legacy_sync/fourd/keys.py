"""Checks on 4D's answers to reads by primary key.

Keyset paging (``key >= last``, sorted by key) and batched reads (``key in [...]``) are only
as sound as the server's obedience. A server or proxy that drops ``$orderby`` makes keyset
paging skip records; one that drops ``$filter`` repeats or invents them; two records that
share a primary-key value (a legacy 4D table need not have a unique index) make a
``key > last`` step skip one of them. Each of these would land part of a table with no
error, so each becomes a :class:`PagingError` that says what was seen and what to do.

Keys compare as 4D compares them: numbers as numbers (``__KEY`` arrives as text, and
``"10"`` must sort after ``"9"``), text without regard to case or accents (4D's ``=`` and
``>`` on text ignore both, so to a filter ``"abc"`` and ``"ABC"`` are the same key).
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from legacy_sync.fourd.errors import PagingError
from legacy_sync.fourd.wire import entity_key

NUMERIC_TYPES = frozenset({"byte", "word", "long", "long64", "integer", "number", "float"})
"""``$catalog`` attribute types whose values are JSON numbers."""

_NUMBER_TYPES = frozenset({int, float})
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_PLAIN = re.compile(r"[0-9a-z]*")


def fold(text: str) -> str:
    """Text as 4D's ``=`` and ``>`` see it: case and accents ignored."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _number(text: str) -> int | float | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def show(value: Any) -> str:
    """A key as a person reads it in a message: ``42``, ``'AB-12'``."""
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class KeyOrder:
    """How the primary key of one dataclass compares: as numbers or as (folded) text."""

    numeric: bool

    @classmethod
    def of_entity(cls, entity: dict[str, Any], key_attribute: str) -> KeyOrder | None:
        """Learn it from a record: the key attribute's JSON type, else whether ``__KEY``
        reads as a number (``__KEY`` is always text). None when the record has no key."""
        value = entity.get(key_attribute)
        if value is not None:
            return cls(numeric=_is_number(value))
        value = entity_key(entity, key_attribute)
        if value is None:
            return None
        return cls(numeric=_is_number(value) or (isinstance(value, str) and _number(value) is not None))

    def value(self, raw: Any) -> Any:
        """``raw`` in the key's type: what ``$params`` must carry and what is compared.

        Raises ``ValueError`` for a value that cannot be a key of this type.
        """
        if not self.numeric:
            if isinstance(raw, str):
                return raw
            if _is_number(raw):
                return str(raw)
            raise ValueError(f"{raw!r} is not a text key")
        if _is_number(raw):
            return raw
        number = _number(raw.strip()) if isinstance(raw, str) else None
        if number is None:
            raise ValueError(f"{raw!r} is not a number")
        return number

    def sort_key(self, value: Any) -> Any:
        """What two keys (from :meth:`value`) are compared by; equal means the same key to 4D."""
        return value if self.numeric else fold(value)

    def sure_less(self, a: Any, b: Any) -> bool:
        """``a`` sorts before ``b`` in 4D, for sure (sort keys from :meth:`sort_key`).

        Text is compared only when both keys are plain letters and digits: for those 4D's
        collation and code-point order agree; punctuation and other scripts may sort
        differently on the server, and a false alarm would stop a healthy sync.
        """
        if self.numeric:
            return bool(a < b)
        return bool(a < b) and _PLAIN.fullmatch(a) is not None and _PLAIN.fullmatch(b) is not None


# -- messages ---------------------------------------------------------------------------------
def duplicate_key(what: str, dataclass: str, key: str, first: Any, second: Any) -> PagingError:
    same = (
        f"{key} = {show(first)}"
        if first == second
        else f"{key} = {show(first)} and {show(second)}, which 4D compares as equal"
    )
    return PagingError(
        f"{what}: two records share the primary key {same}. 4D holds duplicate primary keys in "
        f"{dataclass} (the field has no unique index), and a read by key cannot tell the two "
        f"apart: one of them would be lost without an error. Find them in 4D "
        f"(QUERY([{dataclass}];[{dataclass}]{key}={show(first)})), give one a new key or delete it, "
        f"make {key} unique in the structure, then run again."
    )


def out_of_order(what: str, key: str, before: Any, after: Any) -> PagingError:
    return PagingError(
        f"{what}: 4D sent {key} {show(before)} before {key} {show(after)}, out of key order. The 4D "
        f'server or a proxy in front of it ignores $orderby="{key} asc", and paging by key over '
        "an unsorted answer silently skips records, so the read stopped before using this page. "
        "Check that requests reach 4D unchanged (no caching or rewriting proxy) and that "
        f"{key} is the primary key, then run again."
    )


def filter_ignored(what: str, key: str, boundary: Any, got: Any) -> PagingError:
    return PagingError(
        f"{what}: the server ignored the key filter (asked {key} >= {show(boundary)}, got "
        f"{key} {show(got)}); refusing to page on, it would repeat or skip records. Check that "
        "requests reach 4D unchanged ($filter and $params must survive any proxy), then run again."
    )


def not_asked(what: str, key: str, got: Any, asked: list[Any]) -> PagingError:
    span = f"{show(asked[0])} to {show(asked[-1])}" if len(asked) > 1 else show(asked[0])
    return PagingError(
        f'{what}: 4D returned {key} {show(got)}, which was not asked for ("{key} in :1" with '
        f"{len(asked)} key(s), {span}). The 4D server or a proxy in front of it ignores $filter "
        "or $params, so records read by key cannot be trusted. Check that requests reach 4D "
        "unchanged (no rewriting proxy, no URL length limit below 8 KB), then run again."
    )


def missing_key(what: str, key: str, entity: dict[str, Any]) -> PagingError:
    names = ", ".join(list(entity)[:8]) or "none"
    return PagingError(
        f"{what}: 4D sent a record without {key} or __KEY (attributes: {names}), so its place in "
        f"key order cannot be checked. Make sure {key} is the dataclass's primary key and is "
        "exposed as a REST resource, and request it in $attributes."
    )


def not_a_key(what: str, key: str, value: Any, order: KeyOrder) -> PagingError:
    kind = "a number" if order.numeric else "text"
    return PagingError(
        f"{what}: 4D sent {key} {show(value)}, which is not {kind} like the other keys of this "
        f"read. Check that {key} is the primary key and that its type has not changed in 4D."
    )


def stuck(what: str, key: str, boundary: Any, count: int, request: str) -> PagingError:
    return PagingError(
        f"{what}: 4D answered ({request}) with only the record {key} {show(boundary)}, which was "
        f"already read, although __COUNT says {count} match. A server or proxy that caps pages "
        "at one record cannot be read by key. Raise the page limit of the 4D server or proxy, "
        "then run again."
    )


# -- checks -----------------------------------------------------------------------------------
class _Keys:
    """Reads and compares the keys of records from one dataclass."""

    def __init__(self, what: str, dataclass: str, key: str, order: KeyOrder | None = None) -> None:
        self.what = what
        self.dataclass = dataclass
        self.key = key
        self.order = order

    def of(self, entity: dict[str, Any]) -> tuple[Any, Any]:
        """(key in the key's type, its sort key) of one record; PagingError without one."""
        assert self.order is not None
        raw = entity_key(entity, self.key)
        if raw is None:
            raise missing_key(self.what, self.key, entity)
        try:
            value = self.order.value(raw)
        except ValueError:
            raise not_a_key(self.what, self.key, raw, self.order) from None
        return value, self.order.sort_key(value)

    def ascending(self, entities: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
        """(key, sort key) of each record of a page, checked strictly ascending: no key
        twice, none out of order."""
        if not entities:
            return []
        if self.order is None:
            self.order = KeyOrder.of_entity(entities[0], self.key)
            if self.order is None:
                raise missing_key(self.what, self.key, entities[0])
        order = self.order
        if order.numeric:
            # The common case at C speed (~0.1 ms a page): numeric keys, already ascending.
            values: list[Any] = [e.get(self.key) for e in entities]
            if set(map(type, values)) <= _NUMBER_TYPES and all(map(operator.lt, values, values[1:])):
                return list(zip(values, values, strict=True))
        keys = [self.of(e) for e in entities]
        for (prev, prev_sort), (cur, cur_sort) in pairwise(keys):
            if cur_sort == prev_sort:
                raise duplicate_key(self.what, self.dataclass, self.key, prev, cur)
            if order.sure_less(cur_sort, prev_sort):
                raise out_of_order(self.what, self.key, prev, cur)
        return keys


class KeysetCheck(_Keys):
    """Checks the pages of one keyset read and drops the re-read boundary record."""

    last: Any = None
    """Key of the last record passed on, in the key's type (what the next filter carries)."""

    def new_records(self, entities: list[dict[str, Any]], boundary: Any) -> tuple[list[dict[str, Any]], int]:
        """(records not passed on before, how many were re-read) for one page of ``key >= boundary``.

        The page must ascend strictly. Its first record may be the boundary record itself
        (re-read on purpose, dropped here); a second record with the boundary key is its twin
        and fails as a duplicate key; a record below the boundary means the filter was ignored.
        """
        keys = self.ascending(entities)
        reread = 0
        if boundary is not None and keys and self.order is not None:
            try:
                limit = self.order.value(boundary)
            except ValueError:
                raise not_a_key(self.what, self.key, boundary, self.order) from None
            first, first_sort = keys[0]
            limit_sort = self.order.sort_key(limit)
            if first_sort == limit_sort:
                reread = 1
            elif self.order.sure_less(first_sort, limit_sort) or any(s == limit_sort for _, s in keys):
                # (The second test: text whose order cannot be checked, served again unfiltered.)
                raise filter_ignored(self.what, self.key, boundary, first)
        if len(keys) > reread:
            self.last = keys[-1][0]
        return entities[reread:], reread


class KeyBatchCheck(_Keys):
    """Checks the answers to one batch of ``key in :1``: only asked keys, each at most once.

    A batch the server cuts short is asked again for the keys not yet returned plus the last
    one returned, for the same reason keyset paging re-reads its boundary: that record's twin
    would otherwise be cut off unseen.
    """

    def __init__(self, what: str, dataclass: str, key: str, order: KeyOrder, asked: Iterable[Any]) -> None:
        super().__init__(what, dataclass, key, order)
        self.pending = {order.sort_key(v): v for v in asked}
        self._boundary: tuple[Any, Any] | None = None

    @property
    def boundary(self) -> Any:
        """The last key returned so far (asked again with the rest of a cut-short batch)."""
        return self._boundary[0] if self._boundary else None

    def next_request(self) -> list[Any]:
        """The keys to ask for next, in key order."""
        assert self.order is not None
        keys = dict(self.pending)
        if self._boundary is not None:
            keys[self._boundary[1]] = self._boundary[0]
        return [keys[s] for s in sorted(keys)]

    def accept(self, entities: list[dict[str, Any]], asked: list[Any]) -> list[dict[str, Any]]:
        """The records of one answer not passed on before (a re-read boundary is dropped)."""
        fresh = []
        keys = self.ascending(entities)
        for entity, (value, sort) in zip(entities, keys, strict=True):
            if self.pending.pop(sort, None) is not None:
                fresh.append(entity)
            elif self._boundary is None or sort != self._boundary[1]:
                raise not_asked(self.what, self.key, value, asked)
        if keys:
            self._boundary = keys[-1]
        return fresh
