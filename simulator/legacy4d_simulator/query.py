"""Selections: filter plan + ordering + paging, without scanning when an index answers.

A selection is an ordered sequence of keys that supports ``len()`` and positional access. Key
ranges stay views over the table's sorted key array (``O(log n)`` to build, ``O(page)`` to
serve); only general filters and non-key sorts materialise a key array, and those are kept in a
small LRU cache keyed by the datastore's global stamp so paging through them does not re-scan.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from legacy4d_simulator import errors
from legacy4d_simulator.dataset import Table
from legacy4d_simulator.filters import Plan, fold
from legacy4d_simulator.schema import BOOL, DATE, GLOBAL_STAMP, NUMERIC_TYPES
from legacy4d_simulator.structure import converter
from legacy4d_simulator.values import BLANK_DATE, WireValue

_BIG = 1 << 62


class RangeSel:
    """Keys ``keys[lo:hi]`` of a live sorted key array, ascending or descending."""

    def __init__(self, keys: array, lo: int, hi: int, desc: bool = False) -> None:
        self.keys, self.lo, self.hi, self.desc = keys, lo, max(lo, hi), desc

    def __len__(self) -> int:
        return self.hi - self.lo

    def __getitem__(self, i: int) -> int:
        return self.keys[self.hi - 1 - i] if self.desc else self.keys[self.lo + i]

    def __iter__(self) -> Iterator[int]:
        # Without it, iteration would fall back to __getitem__ until IndexError, i.e. run past
        # ``hi`` to the end of the key array (a PK bound AND a residual predicate saw too much).
        return (self[i] for i in range(len(self)))


class TwinRangeSel(RangeSel):
    """A :class:`RangeSel` of a table with twins: positions map to record ids, not keys."""

    def __init__(self, table: Table, lo: int, hi: int, desc: bool = False) -> None:
        super().__init__(table.keys, lo, hi, desc)
        self.rid_at = table.rid_at

    def __getitem__(self, i: int) -> int:
        return self.rid_at(self.hi - 1 - i if self.desc else self.lo + i)


def _range(t: Table, lo: int, hi: int, desc: bool = False) -> RangeSel:
    return TwinRangeSel(t, lo, hi, desc) if t.twins else RangeSel(t.keys, lo, hi, desc)


class Shuffled:
    """A fixed scrambled order of another selection: position p -> (a*p + b) mod n.

    It stands for 4D's unsorted selections (record-number order): not key order, stable while
    the selection does not change, different as soon as records are added or deleted.
    """

    def __init__(self, inner: Sequence[int]) -> None:
        self.inner = inner
        n = len(inner)
        self.a = 7919 if n % 7919 else 104_729
        self.b = n // 2

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> int:
        n = len(self.inner)
        return self.inner[(self.a * i + self.b) % n]


def sort_value(typ: str, v: Any) -> tuple:
    """Total order for 4D values: NULL first, blank date before any date, text folded."""
    if v is None:
        return (0,)
    if typ == DATE:
        return (1, "") if v is BLANK_DATE else (1, v.isoformat())
    if typ in NUMERIC_TYPES or typ == BOOL:
        return (1, v)
    return (1, fold(v))


def parse_orderby(
    text: str, table: Table, *, tracked: bool, hidden: Collection[str] = ()
) -> list[tuple[str, bool]]:
    """``"a desc, b"`` -> ``[("a", True), ("b", False)]``; 1810 on a bad clause or an unknown
    (or not exposed: ``hidden``) attribute."""
    out = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise errors.RestError(500, (1810, f"Cannot analyse the $orderby clause {part.strip()!r}"))
        name = words[0]
        known = table.schema.field(name) is not None and name not in hidden
        if not known and not (name == GLOBAL_STAMP and tracked):
            raise errors.RestError(
                500,
                (
                    1500,
                    f'The "{name}" attribute cannot be found in The "{table.schema.name}" datastore class',
                ),
                (1810, "Cannot analyse the $orderby clause"),
            )
        out.append((name, len(words) == 2 and words[1].lower() == "desc"))
    return out


def _same(v: Any) -> Any:
    return v


def _field_sort_key(typ: str, i: int, conv: Callable[[Any], Any] | None) -> Callable[[int, tuple], tuple]:
    """Sort key of stored field ``i``; ``conv`` reads a retyped field (wire values sort as NULL)."""
    if conv is None:
        return lambda k, r: sort_value(typ, r[i])
    return lambda k, r: sort_value(typ, None if isinstance(v := conv(r[i]), WireValue) else v)


class QueryEngine:
    """Builds selections for one dataset; holds the LRU cache of materialised selections."""

    def __init__(self, cache_size: int = 8) -> None:
        self._cache: OrderedDict[tuple, Sequence[int]] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def select(
        self,
        table: Table,
        plan: Plan | None,
        orderby: list[tuple[str, bool]],
        *,
        shuffle: bool,
        cache_key: tuple | None = None,
        row_filter: Callable[[int], bool] | None = None,
    ) -> Sequence[int]:
        """The ordered selection of ``table`` for a filter plan and ``$orderby``."""
        if cache_key is not None:
            with self._lock:
                hit = self._cache.get(cache_key)
                if hit is not None:
                    self._cache.move_to_end(cache_key)
                    return hit
        sel = self._build(table, plan, orderby, shuffle, row_filter)
        view = sel.inner if isinstance(sel, Shuffled) else sel
        if cache_key is not None and not isinstance(view, RangeSel):
            with self._lock:
                self._cache[cache_key] = sel
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return sel

    def _build(
        self,
        t: Table,
        plan: Plan | None,
        orderby: list[tuple[str, bool]],
        shuffle: bool,
        row_filter: Callable[[int], bool] | None,
    ) -> Sequence[int]:
        pk = t.schema.key
        key_order = not orderby or (len(orderby) == 1 and orderby[0][0] == pk)
        desc = bool(orderby) and orderby[0][1]
        keys = t.keys
        cand: Sequence[int]
        stamp_order = False
        if plan is None or (
            plan.residual is None
            and plan.pk_in is None
            and plan.gs_lo is None
            and plan.gs_hi is None
            and not plan.empty
        ):
            lo = 0 if plan is None or plan.pk_lo is None else bisect_left(keys, plan.pk_lo)
            hi = len(keys) if plan is None or plan.pk_hi is None else bisect_right(keys, plan.pk_hi)
            cand = _range(t, lo, hi)
            if row_filter is None and key_order:
                if orderby:
                    return _range(t, lo, hi, desc)
                return Shuffled(cand) if shuffle else cand
        elif plan.empty:
            return array("q")
        else:
            residual = plan.residual
            pk_lo = plan.pk_lo if plan.pk_lo is not None else -_BIG
            pk_hi = plan.pk_hi if plan.pk_hi is not None else _BIG
            gs_lo = plan.gs_lo if plan.gs_lo is not None else -_BIG
            gs_hi = plan.gs_hi if plan.gs_hi is not None else _BIG
            use_gs = plan.gs_lo is not None or plan.gs_hi is not None
            if plan.pk_in is not None:
                # O(keys * log n): one bisect per asked key, never a scan.
                base: Sequence[int] = [r for k in plan.pk_in if pk_lo <= k <= pk_hi for r in t.rids_of(k)]
            else:
                lo = bisect_left(keys, pk_lo)
                hi = bisect_right(keys, pk_hi)
                if use_gs and t.stamp_range_size(gs_lo, gs_hi) < hi - lo:
                    base = [k for k in t.stamp_range(max(gs_lo, 0), min(gs_hi, _BIG)) if pk_lo <= k <= pk_hi]
                    stamp_order = True
                    use_gs = False
                else:
                    base = _range(t, lo, hi)
            out = array("q")
            meta_of, row = t.meta_of, t.row
            needs_row = plan.needs_row
            for k in base:
                m = meta_of(k) if (use_gs or residual is not None) else None
                if use_gs and not gs_lo <= m[1] <= gs_hi:
                    continue
                if residual is not None and not residual(k, row(k) if needs_row else None, m):
                    continue
                out.append(k)
            cand = out
        if row_filter is not None:
            cand = array("q", (k for k in cand if row_filter(k)))
        if not orderby:
            if shuffle:
                return Shuffled(cand)
            return cand
        if key_order:
            ordered = array("q", sorted(cand, key=t.pk if t.twins else None)) if stamp_order else cand
            if desc:
                ordered = array("q", reversed(ordered))
            return ordered if isinstance(ordered, array) else array("q", ordered)
        return self._sorted(t, cand, orderby)

    @staticmethod
    def _sorted(t: Table, cand: Sequence[int], orderby: list[tuple[str, bool]]) -> array:
        getters: list[tuple[Callable[[int, tuple], tuple], bool]] = []
        pk, meta_of = t.pk, t.meta_of
        for name, desc in orderby:
            if name == GLOBAL_STAMP:
                getters.append((lambda k, r: (1, meta_of(k)[1]), desc))
            elif name == t.schema.key:
                getters.append((lambda k, r: (1, pk(k)), desc))
            else:
                i = t.schema.index[name]
                conv = converter(t, name) if name in t.retyped else None
                if conv is None and name in t.wire_fields:
                    conv = _same
                getters.append((_field_sort_key(t.schema.fields[i].type, i, conv), desc))
        items = [(k, t.row(k)) for k in cand]
        # Stable multi-key sort: apply keys from the last to the first.
        items.sort(key=lambda kr: kr[0])
        for get, desc in reversed(getters):
            items.sort(key=lambda kr, get=get: get(kr[0], kr[1]), reverse=desc)
        return array("q", (k for k, _r in items))
