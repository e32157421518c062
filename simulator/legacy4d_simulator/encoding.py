"""4D wire encoding of entities and envelopes (protocol doc section 3).

An :class:`EntityEncoder` is compiled once per (dataclass, attribute list) and then turns stored
tuples into dicts; ``orjson`` serialises the envelope. Nothing here touches more than the page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from legacy4d_simulator import errors
from legacy4d_simulator.config import SimulatorConfig
from legacy4d_simulator.dataset import Dataset, Table
from legacy4d_simulator.schema import (
    DATE,
    DELETED_RECORDS,
    GLOBAL_STAMP,
    NUMBER,
    SHOWCASE_FIELDS,
    TableSchema,
)
from legacy4d_simulator.structure import converter
from legacy4d_simulator.values import BLANK_DATE, WireValue, date_to_wire, iso_timestamp

Getter = Callable[[int, tuple, tuple], Any]
"""get(key, row, meta) -> JSON-ready value."""


def key_uri(cfg: SimulatorConfig, table: str, key: Any) -> str:
    """``/rest/T(k)`` (or ``/rest/T[k]`` with ``key_brackets``) as servers put in ``__deferred``."""
    return f"/rest/{table}[{key}]" if cfg.key_brackets else f"/rest/{table}({key})"


@dataclass
class Attr:
    """One output attribute: its name and how to compute its value."""

    name: str
    get: Getter
    fast: tuple[str, int] | None = None
    """(kind, field index) of a plain stored field, for :meth:`EntityEncoder.entity`'s fast path."""

    def __post_init__(self) -> None:
        self.fast_get = self.get  # `fast` holds only while nobody replaced `get`


class EntityEncoder:
    """Encode records of one dataclass with a fixed attribute list."""

    def __init__(
        self,
        ds: Dataset,
        table: Table,
        cfg: SimulatorConfig,
        attrs: list[str] | None,
        *,
        as_array: bool = False,
    ) -> None:
        self.ds = ds
        self.table = table
        self.cfg = cfg
        self.view = table.structure
        """The structure version served (exposed/privileged fields, relation targets' schemas)."""
        self.schema = table.schema
        self.as_array = as_array
        self.tracked = tracked(cfg, self.schema.name)
        names = attrs if attrs else default_attributes(cfg, self.schema, self._hidden())
        self.attrs = [self._attr(n, explicit=attrs is not None) for n in names]
        self.attrs = [a for a in self.attrs if a is not None]

    # -- attribute compilation -----------------------------------------------------------------
    def _hidden(self) -> frozenset[str]:
        return self.view.hidden_fields | self.view.privileged_fields

    def _value(self, typ: str) -> Callable[[Any], Any]:
        if typ == DATE:
            blank_as_null = self.cfg.null_dates_as_null

            def enc(v: Any) -> Any:
                if isinstance(v, WireValue):
                    return v.value
                if v is BLANK_DATE and blank_as_null:
                    return None
                return date_to_wire(v)

            return enc
        return lambda v: v.value if isinstance(v, WireValue) else v

    def _attr(self, name: str, *, explicit: bool) -> Attr | None:
        s = self.schema
        full = f"{s.name}.{name}"
        if full in self.view.privileged_fields:
            return None  # privilege-hidden attributes are silently omitted (ORDA privileges)
        if full in self.view.hidden_fields:
            raise errors.attribute_not_found(name, s.name)
        f = s.field(name)
        if f is not None:
            i = s.index[name]
            conv = converter(self.table, name)
            if conv is not None:  # retyped at run time: the stored value, converted, then encoded
                enc = self._value(f.type) if f.type == DATE else _number if f.type == NUMBER else _same
                return Attr(name, lambda k, r, m: enc(conv(r[i])))
            if f.type == DATE:
                enc = self._value(DATE)
                return Attr(name, lambda k, r, m: enc(r[i]), ("date", i))
            if f.type == NUMBER:
                # 4D writes whole reals without a fraction ("0", not "0.0").
                return Attr(
                    name,
                    lambda k, r, m: (
                        int(v) if isinstance(v := r[i], float) and v.is_integer() and abs(v) < 2**53 else v
                    ),
                    ("number", i),
                )
            return Attr(name, lambda k, r, m: r[i], ("plain", i))
        if name == GLOBAL_STAMP and self.tracked:
            return Attr(name, lambda k, r, m: m[1], ("gstamp", 0))
        if self.cfg.showcase_fields and s.name == "Products":
            show = self._showcase(name)
            if show:
                return show
        if self.cfg.relations:
            head, _, sub = name.partition(".")
            rel = s.relation(head)
            if rel is not None:
                return self._relation(rel, sub)
        raise errors.attribute_not_found(name, s.name)

    def _showcase(self, name: str) -> Attr | None:
        cfg = self.cfg
        table = self.schema.name

        def photo(k: int, r: tuple, m: tuple) -> Any:
            if k % 3 == 0:
                return None  # an empty picture field is null
            uri = f"{key_uri(cfg, table, k)}/Photo?$imageformat=best&$version={m[0]}&$expand=Photo"
            return {"__deferred": {"uri": uri, "image": True}}

        getters: dict[str, Getter] = {
            "Photo": photo,
            "Specs": lambda k, r, m: {
                "num": k,
                "alpha": f"I am {k}",
                "tags": ["bike", "part"],
                "dims": {"w": k % 50, "unit": "cm"},
            },
            "Manual": lambda k, r, m: None,  # BLOBs are not managed by the datastore (v19-20 R4)
            "ProductUUID": lambda k, r, m: (
                hashlib.md5(str(k).encode(), usedforsecurity=False).hexdigest().upper()
            ),
        }
        get = getters.get(name)
        return Attr(name, get) if get else None

    def _relation(self, rel: Any, sub: str) -> Attr:
        s, cfg, ds = self.schema, self.cfg, self.ds
        target = self.view.table(ds, rel.target)
        if rel.many_to_one:
            fk = s.index[rel.fk]
            if not sub:
                return Attr(
                    rel.name,
                    lambda k, r, m: (
                        None
                        if r[fk] is None
                        else {"__deferred": {"uri": key_uri(cfg, rel.target, r[fk]), "__KEY": str(r[fk])}}
                    ),
                )
            inner = EntityEncoder(ds, target, cfg, None if sub == "*" else [sub])

            def embed(k: int, r: tuple, m: tuple) -> Any:
                v = r[fk]
                if v is None or not target.contains(v):
                    return None
                return inner.entity(v)

            return Attr(rel.name, embed)
        if not sub:
            return Attr(
                rel.name,
                lambda k, r, m: {
                    "__deferred": {"uri": f"{key_uri(cfg, s.name, k)}/{rel.name}?$expand={rel.name}"}
                },
            )
        inner = EntityEncoder(ds, target, cfg, None if sub == "*" else [sub])
        child_fk = target.schema.index[rel.fk]

        def expand(k: int, r: tuple, m: tuple) -> Any:
            children = [c for c in target.rids() if target.row(c)[child_fk] == k]
            return {
                "__ENTITYSET": f"{key_uri(cfg, s.name, k)}/{rel.name}?$expand={rel.name}",
                "__GlobalStamp": envelope_stamp(ds, cfg, rel.target),
                "__COUNT": len(children),
                "__FIRST": 0,
                "__ENTITIES": [inner.entity(c) for c in children[: cfg.default_top]],
            }

        return Attr(rel.name, expand)

    # -- encoding ------------------------------------------------------------------------------
    def entity(self, key: int) -> dict[str, Any]:
        """One live record as a 4D entity object."""
        fast = self.__dict__.get("_fast")
        if fast is None:
            fast = self._fast = self._compile()
        return fast(key)

    def _compile(self) -> Callable[[int], dict[str, Any]]:
        """The same entity as :meth:`_entity`, as one generated function for untouched base rows.

        Base rows (generated or loaded, never mutated) hold no :class:`WireValue`, so the fast
        path skips that check and builds the dict in one literal; a mutated row (in the overlay)
        takes the general path. Compiled on first use, after the app adjusted ``attrs``.
        """
        if self.as_array:
            return self._entity
        t = self.table
        names: dict[str, Any] = {
            "overlay": t.overlay,
            "base_row": t.base_row,
            "meta_get": t.meta.get,
            "base_stamp": t.base_stamp,
            "timestamp": t.timestamp,
            "iso_timestamp": iso_timestamp,
            "slow": self._entity,
            "date": _DATE_ENCODERS[bool(self.cfg.null_dates_as_null)],
            "unwrap": _unwrap,
        }
        parts = ['"__KEY": str(key)', '"__TIMESTAMP": ts', '"__STAMP": m[0]']
        for j, a in enumerate(self.attrs):
            names[f"n{j}"] = a.name
            fast = a.fast if a.get is a.fast_get else None
            kind, i = fast if fast is not None else ("getter", -1)
            if kind == "plain":
                expr = f"r[{i}]"
            elif kind == "date":
                expr = f"date(r[{i}])"
            elif kind == "number":
                expr = (
                    f"(int(v) if isinstance(v := r[{i}], float) and v.is_integer()"
                    " and abs(v) < 9007199254740992 else v)"
                )
            elif kind == "gstamp":
                expr = "m[1]"
            else:
                names[f"g{j}"] = a.get
                expr = f"unwrap(g{j}(key, r, m))"
            parts.append(f"n{j}: {expr}")
        quote = "    ts = '\"' + ts + '\"'\n" if self.cfg.legacy_quirks else ""
        # An untouched base record: __STAMP 1, __GlobalStamp its load position (arithmetic for
        # generated keys 1..n), __TIMESTAMP from ModifiedDate/ModifiedTime; as Table.meta_of and
        # Table.timestamp give them, without the calls.
        first = t._base_first
        gstamp = f"{t.gs_offset - first + 1} + key" if first is not None else "base_stamp(key)"
        md = f"r[{t._md}]" if t._md is not None else "None"
        mt = f"r[{t._mt}]" if t._mt is not None else "0"
        source = (
            "def entity(key):\n"
            "    if key in overlay:\n"
            "        return slow(key)\n"
            "    r = base_row(key)\n"
            "    m = meta_get(key)\n"
            "    if m is None:\n"
            f"        m = (1, {gstamp}, None)\n"
            f"        ts = iso_timestamp({md}, {mt})\n"
            "    else:\n"
            "        ts = timestamp(r, m)\n"
            f"{quote}"
            "    return {" + ", ".join(parts) + "}\n"
        )
        exec(compile(source, f"<4d entity {self.schema.name}>", "exec"), names)  # noqa: S102 - our own code
        return names["entity"]  # type: ignore[no-any-return]

    def _entity(self, key: int) -> dict[str, Any]:
        """One live record as a 4D entity object (general path)."""
        t = self.table
        row = t.row(key)
        meta = t.meta_of(key)
        ts = t.timestamp(row, meta)
        pk = t.pk(key)  # ``key`` is a record id: a twin's is not its key
        if self.cfg.legacy_quirks:
            ts = f'"{ts}"'
        if self.as_array:
            out: dict[str, Any] = {"__KEY": {self.schema.key: pk, "__STAMP": meta[0]}, "__TIMESTAMP": ts}
        else:
            out = {"__KEY": str(pk), "__TIMESTAMP": ts, "__STAMP": meta[0]}
        for a in self.attrs:
            value = a.get(pk, row, meta)
            out[a.name] = value.value if isinstance(value, WireValue) else value
        wire = t.wire_system.get(key)
        if wire:  # planted system keys replace the real ones in place
            for name, value in wire.items():
                out[name] = value.value
        return out

    def entity_or_placeholder(self, key: int) -> dict[str, Any]:
        """An entity-set member: the entity, or the ``{"__STAMP": 0}`` placeholder once deleted."""
        if self.table.live(key):
            return self.entity(key)
        return {"__STAMP": 0}


def _number(v: Any) -> Any:
    """4D writes whole reals without a fraction (``0``, not ``0.0``)."""
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v


def _same(v: Any) -> Any:
    return v


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, WireValue) else value


def _cached_date_encoder(blank_as_null: bool) -> Callable[[Any], Any]:
    """``date_to_wire`` for stored base values (date, BLANK_DATE, None), memoised per date."""
    cache: dict[Any, Any] = {None: None, BLANK_DATE: None if blank_as_null else "0!0!0"}

    def enc(v: Any) -> Any:
        try:
            return cache[v]
        except KeyError:
            wire = date_to_wire(v)
            if len(cache) < 8192:  # ~22 years of distinct dates; bounded so memory stays flat
                cache[v] = wire
            return wire

    return enc


_DATE_ENCODERS = {flag: _cached_date_encoder(flag) for flag in (False, True)}
"""One memo per ``null_dates_as_null`` setting for the whole process: a page's dates are mostly
those of the pages before (a memo per request met every date anew)."""


def tracked(cfg: SimulatorConfig, table: str) -> bool:
    """Whether ``table`` has the ``__GlobalStamp`` field in this configuration."""
    return cfg.change_tracking and table != DELETED_RECORDS and table not in cfg.untracked_tables


def envelope_stamp(ds: Dataset, cfg: SimulatorConfig, table: str) -> int:
    """Envelope ``__GlobalStamp``: the datastore counter, 0 when the table is not tracked."""
    if table == DELETED_RECORDS:
        return ds.global_stamp if cfg.change_tracking else 0
    return ds.global_stamp if tracked(cfg, table) else 0


def default_attributes(cfg: SimulatorConfig, schema: TableSchema, hidden: frozenset[str]) -> list[str]:
    """Attributes of an entity when no ``$attributes`` is given: the readable ones in 4D field
    number order (``hidden``: ``"Table.Field"`` not exposed or not readable)."""
    names = [f.name for f in schema.fields if f"{schema.name}.{f.name}" not in hidden and not f.added]
    if schema.name == DELETED_RECORDS:
        return names[1:]  # the fixture entity shows no ID attribute
    if tracked(cfg, schema.name):
        names.append(GLOBAL_STAMP)
    if cfg.showcase_fields and schema.name == "Products":
        names.extend(f.name for f in SHOWCASE_FIELDS)
    names.extend(f.name for f in schema.fields if f.added and f"{schema.name}.{f.name}" not in hidden)
    if cfg.relations:
        names.extend(r.name for r in schema.relations)
    return names


def envelope(
    cfg: SimulatorConfig,
    model: str,
    stamp: int,
    count: int,
    first: int,
    entities: list[dict[str, Any]],
    entityset: str | None = None,
) -> dict[str, Any]:
    """A collection envelope, modern or with the legacy key order/omissions."""
    out: dict[str, Any] = {}
    if entityset:
        out["__ENTITYSET"] = entityset
    if cfg.legacy_quirks:
        out.update(
            {
                "__entityModel": model,
                "__COUNT": count,
                "__FIRST": first,
                "__ENTITIES": entities,
                "__SENT": len(entities),
            }
        )
        return out
    out.update(
        {
            "__DATACLASS": model,
            "__entityModel": model,
            "__GlobalStamp": stamp,
            "__COUNT": count,
            "__FIRST": first,
            "__SENT": len(entities),
            "__ENTITIES": entities,
        }
    )
    return out
