"""Coverage audit: "did we migrate everything 4D holds?", as far as 4D's REST user can see.

From ``$catalog/$all`` (one request) and one small read per table (``$top=1``: its count, and
which attributes its records really carry), the audit lists:

- **tables not synced**: dataclasses the REST user can see that the registry does not declare,
  with their record counts and fields;
- **fields not synced**: storage attributes of synced tables the registry does not read;
- **registry fields 4D no longer sends**: gone from ``$catalog`` (removed or not exposed), or in
  ``$catalog`` but absent from the records (a privilege hides them from the REST user), or the
  whole table no longer exposed;
- **tables without a usable primary key**: 4D names no single key, the key is not a scalar
  field, or it is not the registry's key.

What REST cannot show: 4D leaves tables without a single-field primary key out of the datastore
altogether, and tables or fields not marked "Expose as REST resource" (protocol doc, section 1).
The audit says so; 4D's structure editor (or its SQL server) is where to look for those.

Reports are kept in ``legacy_sync.coverage_report`` (the monitor shows the latest): by
``legacy-sync coverage`` and by the ``legacy_erp_diff`` DAG.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from legacy_sync import cutover_ledger
from legacy_sync.fourd import FourDClient, FourDError
from legacy_sync.registry import TABLES_BY_NAME

log = logging.getLogger(__name__)

SYSTEM_TABLES = frozenset({"__DeletedRecords"})
KEY_TYPES = frozenset({"long", "long64", "word", "string", "uuid", "number"})
INVISIBLE = (
    "4D's REST server never shows tables without a single-field primary key, nor tables and fields "
    "not marked 'Expose as REST resource': check 4D's structure (or its SQL server) for those."
)


@dataclass
class TableCoverage:
    """One dataclass of 4D (or of the registry) as the audit sees it."""

    name: str
    synced: bool
    exposed: bool
    records: int | None = None
    key: str | None = None
    key_problem: str | None = None
    fields: list[str] = field(default_factory=list)
    unsynced_fields: list[str] = field(default_factory=list)
    missing_fields: list[str] = field(default_factory=list)
    """Registry fields gone from ``$catalog``."""
    unsent_fields: list[str] = field(default_factory=list)
    """Registry fields in ``$catalog`` that 4D's records do not carry (a privilege hides them)."""


@dataclass
class CoverageReport:
    tables: list[TableCoverage]
    taken_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def unsynced_tables(self) -> list[TableCoverage]:
        return [t for t in self.tables if not t.synced]

    @property
    def fields_unsynced(self) -> int:
        return sum(len(t.unsynced_fields) for t in self.tables if t.synced)

    @property
    def fields_missing(self) -> int:
        return sum(len(t.missing_fields) + len(t.unsent_fields) for t in self.tables if t.synced)

    @property
    def without_key(self) -> list[TableCoverage]:
        return [t for t in self.tables if t.key_problem]

    @property
    def complete(self) -> bool:
        return not (self.unsynced_tables or self.fields_unsynced or self.fields_missing or self.without_key)

    def lines(self) -> list[tuple[str, str]]:
        """(kind, text) per finding, for people."""
        out: list[tuple[str, str]] = []
        for t in self.unsynced_tables:
            count = f"{t.records:,} records" if t.records is not None else "records unknown"
            out.append(("table not synced", f"{t.name} ({count}; fields: {', '.join(t.fields) or 'none'})"))
        for t in self.tables:
            if not t.synced:
                continue
            if not t.exposed:  # none of its fields is sent: one finding says it
                out.append(("not sent", f"{t.name}: 4D no longer exposes the table"))
                continue
            out += [("field not synced", f"{t.name}.{f}") for f in t.unsynced_fields]
            out += [("not sent", f"{t.name}.{f}: gone from 4D's $catalog") for f in t.missing_fields]
            out += [
                ("not sent", f"{t.name}.{f}: in $catalog but not in 4D's records (a privilege hides it)")
                for f in t.unsent_fields
            ]
        out += [("no usable key", f"{t.name}: {t.key_problem}") for t in self.without_key]
        return out

    def verdict(self) -> str:
        if self.complete:
            return (
                "Yes: every table and field 4D's REST user can see is synced, and every table has a "
                "usable key."
            )
        return (
            f"No: {len(self.unsynced_tables)} table(s) and {self.fields_unsynced} field(s) are not synced, "
            f"{self.fields_missing} registry field(s) are not sent by 4D, {len(self.without_key)} table(s) "
            "have no usable primary key."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at.isoformat(),
            "complete": self.complete,
            "verdict": self.verdict(),
            "invisible": INVISIBLE,
            "findings": [{"kind": k, "text": t} for k, t in self.lines()],
            "tables": [asdict(t) for t in self.tables],
        }


def _storage(attributes: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        a["name"]: a
        for a in attributes
        if isinstance(a, dict) and "name" in a and a.get("kind", "storage") == "storage"
    }


def key_problem(dataclass: dict[str, Any], registry_key: str | None) -> tuple[str | None, str | None]:
    """(4D's key attribute, what is wrong with it or None) of one ``$catalog`` dataclass (pure)."""
    attributes = _storage(dataclass.get("attributes") or [])
    keys = [k.get("name") for k in dataclass.get("key") or [] if isinstance(k, dict)]
    if not keys:
        keys = [n for n, a in attributes.items() if a.get("identifying")]
    if len(keys) != 1:
        return (
            None,
            f"4D names {len(keys) or 'no'} primary key fields ({', '.join(map(str, keys)) or 'none'})",
        )
    key = str(keys[0])
    attribute = attributes.get(key)
    if attribute is None:
        return key, f"its primary key {key} is not an exposed storage field"
    if attribute.get("type") not in KEY_TYPES:
        return key, f"its primary key {key} is of type {attribute.get('type')}, not a number or text"
    if registry_key is not None and key != registry_key:
        return key, f"4D's primary key is {key}, the registry matches records by {registry_key}"
    return key, None


def assess(
    dataclasses: list[dict[str, Any]], samples: dict[str, tuple[set[str] | None, int | None]]
) -> CoverageReport:
    """The report from ``$catalog/$all``'s dataclasses and, per dataclass, (attributes its first
    record carried or None when it has none, its record count) (pure)."""
    report: list[TableCoverage] = []
    seen = set()
    for dc in dataclasses:
        name = str(dc.get("name"))
        if name in SYSTEM_TABLES or name.startswith("__"):
            continue
        seen.add(name)
        table = TABLES_BY_NAME.get(name)
        attributes = _storage(dc.get("attributes") or [])
        key, problem = key_problem(dc, table.key if table else None)
        carried, records = samples.get(name, (None, None))
        data_fields = [n for n in attributes if not n.startswith("__")]
        entry = TableCoverage(name, table is not None, True, records, key, problem, data_fields)
        if table is not None:
            entry.unsynced_fields = [n for n in data_fields if n not in table.attributes]
            entry.missing_fields = [f for f in table.attributes if f not in attributes]
            if carried is not None:
                entry.unsent_fields = [f for f in table.attributes if f in attributes and f not in carried]
        report.append(entry)
    for name, table in TABLES_BY_NAME.items():
        if name not in seen:
            report.append(TableCoverage(name, True, False, missing_fields=list(table.attributes)))
    return CoverageReport(report)


def audit(client: FourDClient) -> CoverageReport:
    """Ask 4D: ``$catalog/$all``, then ``$top=1`` of every dataclass it lists."""
    body = client.get_json("/rest/$catalog/$all", what="read 4D $catalog/$all")
    dataclasses = [dc for dc in body.get("dataClasses", []) if isinstance(dc, dict) and "name" in dc]
    samples: dict[str, tuple[set[str] | None, int | None]] = {}
    for dc in dataclasses:
        name = str(dc["name"])
        if name in SYSTEM_TABLES or name.startswith("__"):
            continue
        table = TABLES_BY_NAME.get(name)
        present = _storage(dc.get("attributes") or [])
        wanted = tuple(f for f in table.attributes if f in present) if table else None
        try:
            page = client.page(name, attributes=wanted, top=1)
        except FourDError as exc:
            log.warning("coverage: could not read a record of %s: %s", name, exc)
            continue
        carried = set(page.entities[0]) if page.entities else None
        samples[name] = (carried, page.count)
    report = assess(dataclasses, samples)
    log.info("coverage: %s", report.verdict())
    return report


def store(conn: Any, report: CoverageReport, source: str) -> int:
    """Keep the report (the monitor shows the latest); returns its id."""
    return cutover_ledger.record_coverage(conn, report, source)
