"""Structure changes at run time, and which version of the structure a REST session sees.

A legacy ERP's structure drifts between sync runs: a field is added, retyped or deleted, a
privilege hides one, a table stops being exposed. 4D loads the datastore model per REST session:
"structure changes are not picked up by an existing REST session; a new session is needed"
(protocol doc 8.13, ORDA "Data model update"). So every change makes a new :class:`Structure`
version; a session keeps the version it was opened with
(``SimulatorConfig.schema_changes_need_new_session``, default True) or always sees the newest.

Storage only grows, so every version can still be served: an added field is appended to the
table's rows (its value a constant or a function of the key, computed when a row is read); a
removed field stays in the rows and is hidden from the versions after its removal; a retyped
field's values are converted when read, by value, to the type of the version being served (4D
converts the data when a field's type changes; the lazily generated rows cannot be rewritten).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from legacy4d_simulator.dataset import Dataset, Table, coerce
from legacy4d_simulator.schema import (
    BOOL,
    DATE,
    DELETED_RECORDS,
    DURATION,
    GLOBAL_STAMP,
    LONG,
    LONG64,
    NUMBER,
    STRING,
    WORD,
    Field,
    TableSchema,
)
from legacy4d_simulator.values import BLANK_DATE, WireValue, parse_date

FIELD_TYPES = frozenset({STRING, NUMBER, LONG, LONG64, WORD, BOOL, DATE, DURATION})
"""Types a run-time change may give a field (4D catalog type names)."""
_INTEGER_TYPES = frozenset({LONG, LONG64, WORD, DURATION})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Structure:
    """One version of the datastore model as REST sessions see it.

    Attributes:
        version: 0 for the configured structure, + 1 per change.
        schemas: every dataclass's schema in this version (fields present then, their types then).
        hidden_tables: dataclasses not exposed (absent from ``$catalog``, 404/1800).
        hidden_fields: ``"Table.Field"`` not exposed or removed (absent from the catalog, 1500).
        privileged_fields: ``"Table.Field"`` the session may not read (silently omitted).
    """

    version: int
    schemas: Mapping[str, TableSchema]
    hidden_tables: frozenset[str]
    hidden_fields: frozenset[str]
    privileged_fields: frozenset[str]

    def table(self, ds: Dataset, name: str) -> Table:
        """``name``'s table seen through this version (``KeyError`` if unknown).

        A shallow copy that shares the storage (keys, rows, stamps) and carries this version's
        schema and itself as ``structure``, for one request; callers hold ``ds.lock``.
        """
        view = copy.copy(ds.table(name))
        view.schema = self.schemas.get(name, view.schema)
        view.structure = self
        return view

    def hidden(self, table: str) -> frozenset[str]:
        """Names of ``table``'s fields that are not exposed in this version."""
        prefix = table + "."
        return frozenset(f[len(prefix) :] for f in self.hidden_fields if f.startswith(prefix))


def convert(value: Any, typ: str, length: int | None = None) -> Any:
    """A stored value as a field of type ``typ`` (Alpha ``length``) holds it after a retype.

    Conversions follow 4D's: text to number reads the leading number (0 if none), numbers to
    text print without a needless fraction, anything to a date that is not one is the blank date;
    an Alpha field keeps its first ``length`` characters. NULL and wire values stay as they are.
    """
    if value is None or isinstance(value, WireValue):
        return value
    if typ == STRING:
        if isinstance(value, bool):
            text = "True" if value else "False"
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))
        elif value is BLANK_DATE:
            text = ""
        elif isinstance(value, dt.date):
            text = f"{value.day}!{value.month}!{value.year}"
        elif isinstance(value, (dict, list)):
            text = json.dumps(value)
        else:
            text = str(value)
        return text[:length] if length is not None else text
    if typ in _INTEGER_TYPES or typ == NUMBER:
        if isinstance(value, (int, float)):  # bool included
            number: float = value
        elif isinstance(value, str):
            match = re.match(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)", value)
            number = float(match.group(0)) if match else 0
        else:
            number = 0
        return int(number) if typ in _INTEGER_TYPES else float(number)
    if typ == BOOL:
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value) if isinstance(value, (int, float)) else False
    if typ == DATE:
        if value is BLANK_DATE or isinstance(value, dt.date):
            return value
        try:
            return parse_date(str(value))
        except ValueError:
            return BLANK_DATE
    return value


def converter(view: Table, name: str) -> Callable[[Any], Any] | None:
    """The read conversion of field ``name`` for a (view) table, or None if never retyped."""
    if name not in view.retyped:
        return None
    f = view.schema.field(name)
    assert f is not None
    return lambda v: convert(v, f.type, f.length)


class SchemaChanges:
    """Run-time structure changes (``sim.schema.*``, ``POST /_sim/schema``). Thread-safe.

    Every change makes a new :attr:`current` :class:`Structure`; see the module docstring for who
    sees it. Changes apply to the seven ERP dataclasses (``expose_table``/``unexpose_table`` also
    to ``__DeletedRecords``); the primary key field cannot be removed, retyped or hidden.
    """

    def __init__(
        self,
        ds: Dataset,
        hidden_tables: frozenset[str],
        hidden_fields: frozenset[str],
        privileged_fields: frozenset[str],
    ) -> None:
        self.ds = ds
        self._lock = threading.Lock()
        self.log: list[dict[str, Any]] = []
        self.current = Structure(
            0,
            self._schemas(),
            frozenset(hidden_tables),
            frozenset(hidden_fields),
            frozenset(privileged_fields),
        )

    def _schemas(self) -> dict[str, TableSchema]:
        return {name: t.schema for name, t in self.ds.tables.items()}

    def _field(self, table: str, name: str) -> Field:
        t = self.ds.tables.get(table)
        if t is None:
            raise KeyError(f"unknown dataclass {table!r}")
        f = t.schema.field(name)
        if f is None or f"{table}.{name}" in self.current.hidden_fields:
            raise KeyError(f"{table} has no field {name!r}")
        if name == t.schema.key:
            raise ValueError(f"{table}.{name} is the primary key")
        return f

    def _commit(self, change: dict[str, Any], **sets: frozenset[str]) -> None:
        cur = self.current
        self.current = Structure(
            cur.version + 1,
            self._schemas(),
            sets.get("hidden_tables", cur.hidden_tables),
            sets.get("hidden_fields", cur.hidden_fields),
            sets.get("privileged_fields", cur.privileged_fields),
        )
        self.log.append({"version": self.current.version, **change})

    def add_field(
        self,
        table: str,
        name: str,
        type: str,
        default: Any = None,
        *,
        generate: Callable[[int], Any] | str | None = None,
        indexed: bool = False,
    ) -> None:
        """Add a storage field; existing records hold ``default`` or ``generate(key)``.

        ``generate`` may be a format string with ``{key}`` (e.g. ``"R-{key}"``), for HTTP callers.

        Raises:
            KeyError: unknown dataclass.
            ValueError: bad name or type, or the name is taken (removed fields keep theirs).
        """
        if type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {type!r}; known: {', '.join(sorted(FIELD_TYPES))}")
        if not _NAME.fullmatch(name) or name == GLOBAL_STAMP:
            raise ValueError(f"bad field name {name!r}")
        fixed = coerce(type, default)

        def value_of(key: int) -> Any:
            if generate is None:
                return fixed
            if isinstance(generate, str):
                return coerce(type, generate.format(key=key))
            return coerce(type, generate(key))

        with self.ds.lock, self._lock:
            t = self.ds.tables.get(table)
            if t is None:
                raise KeyError(f"unknown dataclass {table!r}")
            if name in t.schema.index or t.schema.relation(name) is not None:
                raise ValueError(f"{table} already has an attribute {name!r}")
            self.ds.add_field(table, Field(name, type, indexed, added=True), value_of)
            self._commit({"op": "add_field", "table": table, "name": name, "type": type})

    def retype_field(self, table: str, name: str, type: str, *, length: int | None = None) -> None:
        """Change a field's type (``$catalog`` reports it); ``length`` makes it an Alpha field of
        that many characters (longer values are cut; ``$catalog`` says ``string`` either way).

        Raises:
            KeyError: unknown dataclass or field.
            ValueError: unknown type, or the primary key.
        """
        if type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {type!r}; known: {', '.join(sorted(FIELD_TYPES))}")
        if length is not None and (type != STRING or length < 1):
            raise ValueError("a length needs type 'string' and at least 1 character")
        with self.ds.lock, self._lock:
            self._field(table, name)
            self.ds.retype_field(table, name, type, length)
            self._commit({"op": "retype_field", "table": table, "name": name, "type": type, "length": length})

    def remove_field(self, table: str, name: str) -> None:
        """Delete a field: absent from ``$catalog`` and entities, 1500 when asked for.

        Raises:
            KeyError: unknown dataclass or field.
            ValueError: the primary key.
        """
        with self._lock:
            self._field(table, name)
            self._commit(
                {"op": "remove_field", "table": table, "name": name},
                hidden_fields=self.current.hidden_fields | {f"{table}.{name}"},
            )

    def hide_field(self, table: str, name: str) -> None:
        """Take a field's read privilege away: still in ``$catalog``, silently left out of entities.

        Raises:
            KeyError: unknown dataclass or field.
            ValueError: the primary key.
        """
        with self._lock:
            self._field(table, name)
            self._commit(
                {"op": "hide_field", "table": table, "name": name},
                privileged_fields=self.current.privileged_fields | {f"{table}.{name}"},
            )

    def show_field(self, table: str, name: str) -> None:
        """Give a privilege-hidden field (run-time or ``privileged_fields``) back."""
        with self._lock:
            self._field(table, name)
            self._commit(
                {"op": "show_field", "table": table, "name": name},
                privileged_fields=self.current.privileged_fields - {f"{table}.{name}"},
            )

    def unexpose_table(self, table: str) -> None:
        """Stop exposing a dataclass: absent from ``$catalog``, 404/1800 on any access."""
        self._exposure(table, "unexpose_table", self.current.hidden_tables | {table})

    def expose_table(self, table: str) -> None:
        """Expose a dataclass again (also one of ``hidden_tables``)."""
        self._exposure(table, "expose_table", self.current.hidden_tables - {table})

    def _exposure(self, table: str, op: str, hidden: frozenset[str]) -> None:
        if table not in self.ds.tables and table != DELETED_RECORDS:
            raise KeyError(f"unknown dataclass {table!r}")
        with self._lock:
            self._commit({"op": op, "table": table}, hidden_tables=hidden)

    def apply(self, change: Mapping[str, Any]) -> None:
        """One change as JSON gives it: ``{"op": "add_field", "table": ..., "name": ..., ...}``.

        Raises:
            KeyError: missing key, unknown dataclass or field.
            ValueError: unknown op or bad value.
        """
        args = dict(change)
        op = args.pop("op")
        ops: dict[str, Callable[..., None]] = {
            "add_field": self.add_field,
            "retype_field": self.retype_field,
            "remove_field": self.remove_field,
            "hide_field": self.hide_field,
            "show_field": self.show_field,
            "unexpose_table": self.unexpose_table,
            "expose_table": self.expose_table,
        }
        if op not in ops:
            raise ValueError(f"unknown op {op!r}; known: {', '.join(ops)}")
        ops[op](**args)

    def as_dict(self) -> dict[str, Any]:
        """The current version and every change so far (``GET /_sim/schema``)."""
        with self._lock:
            return {"version": self.current.version, "changes": list(self.log)}
