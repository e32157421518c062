"""The simulated datastore: seven dataclasses plus ``__DeletedRecords``, with 4D change tracking.

Storage is an immutable *base* (CSV rows in a dict, or the lazy :class:`Generator`) plus an
*overlay* of mutated rows, so a 5-million-record dataset holds only its sorted key arrays.
Every save stamps the record like 4D does: ``__STAMP`` + 1, ``__GlobalStamp`` = the datastore's
counter (which then increments), ``__TIMESTAMP`` = now by the server's :class:`Clock`; a delete
appends a ``__DeletedRecords`` row.

Base records get ``__STAMP`` 1 and ``__GlobalStamp`` = their load position (tables loaded in
schema order, keys ascending), so the base part of the ``__GlobalStamp`` index is arithmetic.
"""

from __future__ import annotations

import csv
import datetime as dt
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from legacy4d_simulator.generator import Generator
from legacy4d_simulator.schema import (
    BOOL,
    DATE,
    DELETED_SCHEMA,
    DURATION,
    LONG,
    LONG64,
    NUMBER,
    TABLES,
    WORD,
    Field,
    TableSchema,
)
from legacy4d_simulator.values import BLANK_DATE, Clock, WireValue, coerce_date, iso_timestamp

TWIN_BASE = 1 << 60
"""Record ids from here up name *twins* (records repeating another's primary key); keys stay below."""

SYSTEM_WIRE_KEYS = frozenset({"__KEY", "__TIMESTAMP", "__STAMP"})
"""System keys a save may override on the wire (WireValue/RawJson; None stops overriding)."""

Meta = tuple[int, int, str | None]
"""(``__STAMP``, ``__GlobalStamp``, ``__TIMESTAMP`` or None = derive from ModifiedDate/Time)."""


class Table:
    """One dataclass: sorted live keys, base rows, overlay and change log.

    Records are addressed by a *record id*: the primary key itself, except for twins (a second
    record with the same key, :meth:`Dataset.add_twin`), whose ids are ``TWIN_BASE`` + n. The key
    array holds the key once per record, so index ranges and counts include twins unchanged;
    :meth:`rid_at` turns a position back into a record id. A table without twins pays nothing.
    """

    def __init__(
        self, schema: TableSchema, base_keys: Sequence[int], base_row: Callable[[int], tuple], gs_offset: int
    ) -> None:
        self.schema = schema
        self.base_keys = base_keys
        self.base_row = base_row
        self.gs_offset = gs_offset
        self.keys = array("q", base_keys)
        self.overlay: dict[int, tuple | None] = {}
        self.meta: dict[int, Meta] = {}
        # Append-only log of saves, ascending __GlobalStamp: the index for stamp-range filters.
        self.change_gs = array("q")
        self.change_key = array("q")
        self.version = 0
        # Wire-level oddities, empty unless a test plants some: system keys served as given per
        # record, and the fields that ever held a WireValue (queries read those as NULL).
        self.wire_system: dict[int, dict[str, WireValue]] = {}
        self.wire_fields: set[str] = set()
        self.structure: Any = None
        """On a request's view of the table (structure.Structure.table): the version it serves."""
        self.retyped: set[str] = set()
        """Fields whose type changed at run time: read through a conversion (see structure.py)."""
        self.twins: dict[int, list[int]] = {}
        """Key -> record ids of its live twins, in creation order (the key's own record first)."""
        self.twin_key: dict[int, int] = {}
        """Twin record id -> its key (kept after deletion for entity-set placeholders)."""
        keys = base_keys
        self._base_first = keys.start if isinstance(keys, range) and keys.step == 1 else None
        self._md = schema.index.get("ModifiedDate")
        self._mt = schema.index.get("ModifiedTime")

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, key: int) -> bool:
        """True when ``key`` is a live record."""
        i = bisect_left(self.keys, key)
        return i < len(self.keys) and self.keys[i] == key

    def live(self, rid: int) -> bool:
        """True when record id ``rid`` (a key or a twin's id) is a live record."""
        if rid < TWIN_BASE:
            return self.contains(rid)
        return self.overlay.get(rid) is not None

    def pk(self, rid: int) -> int:
        """The primary key value of record id ``rid``."""
        return rid if rid < TWIN_BASE else self.twin_key[rid]

    def rid_at(self, j: int) -> int:
        """Record id at position ``j`` of the key array (a key's records: its own, then twins)."""
        k = self.keys[j]
        twins = self.twins.get(k)
        if twins is None:
            return k
        n = j - bisect_left(self.keys, k)
        return k if n == 0 else twins[n - 1]

    def rids_of(self, key: int) -> list[int]:
        """Record ids of the live records with primary key ``key`` (none, one, or with twins)."""
        if not self.contains(key):
            return []
        return [key, *self.twins.get(key, ())]

    def rids(self) -> Iterator[int]:
        """Record ids of all live records in key order."""
        if not self.twins:
            return iter(self.keys)
        return (self.rid_at(j) for j in range(len(self.keys)))

    def row(self, key: int) -> tuple:
        """The stored tuple of a live record (caller checked it is live)."""
        if key in self.overlay:
            row = self.overlay[key]
            assert row is not None
            return row
        return self.base_row(key)

    def base_stamp(self, key: int) -> int:
        """``__GlobalStamp`` of an untouched base record."""
        if self._base_first is not None:  # generated keys 1..n: the position is arithmetic
            return self.gs_offset + key - self._base_first + 1
        return self.gs_offset + bisect_left(self.base_keys, key) + 1

    def meta_of(self, key: int) -> Meta:
        """``(__STAMP, __GlobalStamp, __TIMESTAMP|None)`` of a live record."""
        m = self.meta.get(key)
        return m if m is not None else (1, self.base_stamp(key), None)

    def timestamp(self, row: tuple, meta: Meta) -> str:
        """``__TIMESTAMP`` string for a record."""
        if meta[2] is not None:
            return meta[2]
        md = row[self._md] if self._md is not None else None
        mt = row[self._mt] if self._mt is not None else 0
        return iso_timestamp(md, mt)

    def stamp_range(self, lo: int, hi: int) -> array:
        """Live keys whose ``__GlobalStamp`` is in ``[lo, hi]``, in stamp order (index, no row reads)."""
        out = array("q")
        n_base = len(self.base_keys)
        i0 = max(0, lo - self.gs_offset - 1)
        i1 = min(n_base, hi - self.gs_offset)
        meta = self.meta
        for i in range(i0, i1):
            k = self.base_keys[i]
            if k not in meta:  # touched base records carry a newer stamp (or are deleted)
                out.append(k)
        j0 = bisect_left(self.change_gs, lo)
        j1 = bisect_right(self.change_gs, hi)
        for j in range(j0, j1):
            k = self.change_key[j]
            m = meta.get(k)
            if m is not None and m[0] > 0 and m[1] == self.change_gs[j]:
                out.append(k)
        return out

    def stamp_range_size(self, lo: int, hi: int) -> int:
        """Upper bound of :meth:`stamp_range`'s size, in O(log n) (chooses between indexes)."""
        n_base = len(self.base_keys)
        base = max(0, min(n_base, hi - self.gs_offset) - max(0, lo - self.gs_offset - 1))
        return base + bisect_right(self.change_gs, hi) - bisect_left(self.change_gs, lo)


def _csv_converter(typ: str) -> Callable[[str], Any]:
    dates: dict[str, Any] = {}

    def date(text: str) -> Any:
        d = dates.get(text)
        if d is None:
            d = dates[text] = BLANK_DATE if text == "" else dt.date.fromisoformat(text)
        return d

    if typ == DATE:
        return date
    if typ in (LONG, WORD, LONG64):
        return lambda s: int(s) if s != "" else None
    if typ == NUMBER:
        return lambda s: float(s) if s != "" else None
    if typ == BOOL:
        return lambda s: None if s == "" else s.strip().lower() in ("true", "1")
    if typ == DURATION:
        return lambda s: int(s) if s != "" else 0
    return lambda s: s if s != "" else None


def coerce(typ: str, value: Any) -> Any:
    """Convert a mutation API value to the stored form of a field type."""
    if value is None or isinstance(value, WireValue):
        return value
    if typ == DATE:
        return coerce_date(value)
    if typ in (LONG, WORD, LONG64, DURATION):
        return int(value)
    if typ == NUMBER:
        return float(value)
    if typ == BOOL:
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
    return value if isinstance(value, (str, dict, list)) else str(value)


def _split_system(changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate field changes from wire overrides of system keys (``__KEY``, ...)."""
    system = {k: v for k, v in changes.items() if k in SYSTEM_WIRE_KEYS}
    for k, v in system.items():
        if v is not None and not isinstance(v, WireValue):
            raise ValueError(f"{k} can only be given as a WireValue or RawJson (None: stop overriding)")
    return {k: v for k, v in changes.items() if k not in SYSTEM_WIRE_KEYS}, system


def _apply_wire(t: Table, key: int, changes: Mapping[str, Any], system: Mapping[str, Any]) -> None:
    t.wire_fields.update(n for n, v in changes.items() if isinstance(v, WireValue))
    if not system:
        return
    merged = {k: v for k, v in {**t.wire_system.get(key, {}), **system}.items() if v is not None}
    if merged:
        t.wire_system[key] = merged
    else:
        t.wire_system.pop(key, None)


class Dataset:
    """The datastore the simulator serves. Thread-safe: mutate it while a sync is running."""

    def __init__(self, tables: dict[str, Table], source: str, generator: Generator | None = None) -> None:
        self.tables = tables
        self.source = source
        self.generator = generator
        self.lock = threading.RLock()
        self.clock = Clock()
        """The server machine's clock for saves (a :class:`SimulatorServer` installs its own)."""
        self.global_stamp = sum(len(t.base_keys) for t in tables.values()) + 1
        self.deleted = Table(DELETED_SCHEMA, (), lambda k: (), 0)
        self._deleted_rows: dict[int, tuple] = {}
        self.deleted.base_row = self._deleted_rows.__getitem__

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_csv_dir(cls, path: str | Path) -> Dataset:
        """Load the AdventureWorks CSVs (``<Table>.csv``; ISO dates, empty = NULL/blank date).

        Empty dates become 4D blank dates (``"0!0!0"`` on the wire), ``ModifiedTime`` is 0 when the
        file has no such column, other empty values are NULL. Missing files give empty tables.
        """
        path = Path(path)
        tables: dict[str, Table] = {}
        offset = 0
        for schema in TABLES:
            rows: dict[int, tuple] = {}
            file = path / f"{schema.name}.csv"
            if file.exists():
                with file.open(newline="", encoding="utf-8") as fh:
                    reader = csv.reader(fh)
                    header = next(reader)
                    pos = {name: i for i, name in enumerate(header)}
                    plan = [(pos.get(f.name), _csv_converter(f.type)) for f in schema.fields]
                    for rec in reader:
                        row = tuple(conv(rec[i] if i is not None else "") for i, conv in plan)
                        rows[row[0]] = row
            keys = array("q", sorted(rows))
            tables[schema.name] = Table(schema, keys, rows.__getitem__, offset)
            offset += len(keys)
        return cls(tables, str(path))

    @classmethod
    def generate(cls, scale: int, seed: int = 0, dirty: float = 0.0) -> Dataset:
        """Generate about ``scale`` records over the seven tables, lazily (see :mod:`.generator`).

        Args:
            scale: approximate total record count (proportions in ``generator.PROPORTIONS``).
            seed: same seed, same data.
            dirty: fraction (0..0.5) of records per table planted with a documented defect.
        """
        gen = Generator(scale, seed, dirty)
        tables: dict[str, Table] = {}
        offset = 0
        for schema in TABLES:
            n = gen.sizes[schema.name]
            tables[schema.name] = Table(schema, range(1, n + 1), gen.row_functions[schema.name], offset)
            offset += n
        return cls(tables, f"generated(scale={scale}, seed={seed}, dirty={dirty})", gen)

    # -- reading -------------------------------------------------------------------------------
    def table(self, name: str) -> Table:
        """The :class:`Table` called ``name`` (``KeyError`` if unknown)."""
        if name == DELETED_SCHEMA.name:
            return self.deleted
        return self.tables[name]

    def count(self, table: str) -> int:
        """Number of live records."""
        with self.lock:
            return len(self.table(table))

    def total_records(self) -> int:
        """Live records over the seven dataclasses."""
        with self.lock:
            return sum(len(t) for t in self.tables.values())

    def keys(self, table: str) -> Iterator[int]:
        """Live keys ascending, once per record (a key with a twin twice); a snapshot of the
        compact key array, no record is built."""
        with self.lock:
            snapshot = array("q", self.table(table).keys)
        return iter(snapshot)

    def get(self, table: str, key: int) -> dict[str, Any] | None:
        """A record as ``{field: value}`` (dates as ``datetime.date``; blank date as None), or None."""
        with self.lock:
            t = self.table(table)
            if not t.contains(key):
                return None
            row = t.row(key)
        return {f.name: (None if v is BLANK_DATE else v) for f, v in zip(t.schema.fields, row, strict=True)}

    def stamps(self, table: str, key: int) -> dict[str, Any] | None:
        """``{"__STAMP", "__GlobalStamp", "__TIMESTAMP"}`` of a live record, or None."""
        with self.lock:
            t = self.table(table)
            if not t.contains(key):
                return None
            meta = t.meta_of(key)
            return {
                "__STAMP": meta[0],
                "__GlobalStamp": meta[1],
                "__TIMESTAMP": t.timestamp(t.row(key), meta),
            }

    def planted_defects(self) -> list[tuple[str, int, str]]:
        """``(table, key, kind)`` of every bad record the dirty knob planted (as generated)."""
        return list(self.generator.planted_defects()) if self.generator else []

    # -- mutation ------------------------------------------------------------------------------
    def _build(self, schema: TableSchema, base: tuple | None, changes: Mapping[str, Any]) -> list[Any]:
        unknown = set(changes) - set(schema.index)
        if unknown:
            raise KeyError(f"{schema.name} has no field(s) {sorted(unknown)}")
        row = (
            list(base)
            if base is not None
            else [
                BLANK_DATE if f.type == DATE else (0 if f.type == DURATION else None) for f in schema.fields
            ]
        )
        for name, value in changes.items():
            f = schema.field(name)
            assert f is not None
            row[schema.index[name]] = coerce(f.type, value)
        # 4D applications maintain these on every save (schema doc); honour explicit values.
        now = self.clock.now()
        if "ModifiedDate" in schema.index and "ModifiedDate" not in changes:
            row[schema.index["ModifiedDate"]] = now.date()
        if "ModifiedTime" in schema.index and "ModifiedTime" not in changes:
            row[schema.index["ModifiedTime"]] = (now.hour * 3600 + now.minute * 60 + now.second) * 1000 + (
                now.microsecond // 1000
            )
        return row

    def _save(self, t: Table, key: int, row: tuple, stamp: int) -> int:
        gs = self.global_stamp
        self.global_stamp += 1
        t.overlay[key] = row
        t.meta[key] = (stamp, gs, self.clock.timestamp())
        t.change_gs.append(gs)
        t.change_key.append(key)
        t.version += 1
        return gs

    def insert(self, table: str, record: Mapping[str, Any]) -> int:
        """Insert a record; its key is ``record[PK]`` or the highest key + 1. Returns the key.

        Raises:
            KeyError: unknown table or field.
            ValueError: the key already exists.
        """
        record, system = _split_system(record)
        with self.lock:
            t = self.tables[table]
            pk = t.schema.key
            key = record.get(pk)
            key = int(key) if key is not None else (t.keys[-1] + 1 if len(t.keys) else 1)
            if t.contains(key) or (key in t.overlay and t.overlay[key] is not None):
                raise ValueError(f"{table}({key}) already exists")
            if key >= TWIN_BASE:
                raise ValueError(f"keys from {TWIN_BASE} up are reserved for twins' record ids")
            row = self._build(t.schema, None, {**record, pk: key})
            i = bisect_left(t.keys, key)
            t.keys.insert(i, key)
            self._save(t, key, tuple(row), 1)
            _apply_wire(t, key, record, system)
            return key

    def update(self, table: str, key: int, changes: Mapping[str, Any]) -> None:
        """Change fields of a live record (the primary key cannot change).

        ``changes`` may also hold ``__KEY``, ``__TIMESTAMP`` or ``__STAMP`` as a
        :class:`WireValue`/:class:`RawJson`: the record's system key is then served as given
        (until set to None), e.g. ``{"__KEY": RawJson('"12\\u0000"')}``; so may :meth:`insert`.

        Raises:
            KeyError: unknown table, field, or record.
        """
        changes, system = _split_system(changes)
        with self.lock:
            t = self.tables[table]
            if not t.contains(key):
                raise KeyError(f"{table}({key}) not found")
            if t.schema.key in changes and int(changes[t.schema.key]) != key:
                raise ValueError("the primary key cannot change")
            row = self._build(t.schema, t.row(key), changes)
            self._save(t, key, tuple(row), t.meta_of(key)[0] + 1)
            _apply_wire(t, key, changes, system)

    # -- structure (driven by structure.SchemaChanges) ------------------------------------------
    def add_field(self, table: str, field: Field, value_of: Callable[[int], Any]) -> None:
        """Append a storage field; every existing record holds ``value_of(its key)``.

        Base rows get the value when read (they are never stored); mutated rows now.
        """
        with self.lock:
            t = self.tables[table]
            s = t.schema
            t.schema = TableSchema(s.name, s.number, s.key, (*s.fields, field), s.relations)
            base_row = t.base_row
            t.base_row = lambda k: (*base_row(k), value_of(k))
            for rid, row in t.overlay.items():
                if row is not None:
                    t.overlay[rid] = (*row, value_of(row[0]))
            t.version += 1

    def retype_field(self, table: str, name: str, typ: str, length: int | None) -> None:
        """Give a field another type: saves coerce to it, reads convert stored values by value."""
        with self.lock:
            t = self.tables[table]
            s = t.schema
            i = s.index[name]
            old = s.fields[i]
            new = Field(name, typ, old.indexed, length, old.added)
            t.schema = TableSchema(
                s.name, s.number, s.key, (*s.fields[:i], new, *s.fields[i + 1 :]), s.relations
            )
            t.retyped.add(name)
            t.version += 1

    def add_twin(self, table: str, key: int, changes: Mapping[str, Any] | None = None) -> None:
        """Save a second record with the same primary key as the live record ``key``.

        Legacy 4D tables may lack a unique index on the key field, so two records can share it.
        The twin starts as a copy of the record with ``changes`` applied and is a save of its own
        (``__STAMP`` 1, next ``__GlobalStamp``, ``__TIMESTAMP``/ModifiedDate/Time now unless
        given). Selections treat it as 4D does: ``PK = k``, ``PK >= k``, ``PK in [k]`` and
        ``__COUNT`` include both, ``PK > k`` neither; sorted on the key they are adjacent.
        :meth:`get`, :meth:`update` and :meth:`stamps` address the first record; :meth:`delete`
        deletes them all. Call again for a third record.

        Raises:
            KeyError: unknown table, field or record.
            ValueError: ``changes`` gives another primary key.
        """
        changes, system = _split_system(changes or {})
        with self.lock:
            t = self.tables[table]
            if not t.contains(key):
                raise KeyError(f"{table}({key}) not found")
            if t.schema.key in changes and int(changes[t.schema.key]) != key:
                raise ValueError("a twin has its original's primary key")
            row = self._build(t.schema, t.row(key), changes)
            rid = TWIN_BASE + len(t.twin_key) + 1
            t.keys.insert(bisect_right(t.keys, key), key)
            t.twins.setdefault(key, []).append(rid)
            t.twin_key[rid] = key
            self._save(t, rid, tuple(row), 1)
            _apply_wire(t, rid, changes, system)

    def delete(self, table: str, key: int) -> None:
        """Delete the live record(s) with primary key ``key`` (twins too), each logged in
        ``__DeletedRecords`` with its own ``__Stamp`` like 4D change tracking.

        Raises:
            KeyError: unknown table or record.
        """
        with self.lock:
            t = self.tables[table]
            i = bisect_left(t.keys, key)
            j = bisect_right(t.keys, key)
            if i == j:
                raise KeyError(f"{table}({key}) not found")
            del t.keys[i:j]
            d = self.deleted
            for rid in (key, *t.twins.pop(key, ())):
                stamp = self.global_stamp
                self.global_stamp += 1
                t.overlay[rid] = None
                t.meta[rid] = (0, stamp, self.clock.timestamp())
                t.wire_system.pop(rid, None)
                dkey = d.keys[-1] + 1 if len(d.keys) else 1
                self._deleted_rows[dkey] = (dkey, str(key), stamp, t.schema.name, t.schema.number)
                d.keys.append(dkey)
            t.version += 1
            d.version += 1
