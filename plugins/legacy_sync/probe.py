"""``legacy-sync probe``: what a real 4D server is like, before the first sync.

Answers, with one session, what the sync needs to know of a 4D server: the 4D version,
which registry tables are exposed and their keys, change tracking per table, the unit of
time fields, whether date filters work and in which format, the session cookie's name, and
the largest page the server answers within the read timeout.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from legacy_sync.fourd import FourDClient, FourDError
from legacy_sync.fourd.client import Filter
from legacy_sync.registry import TABLES

PAGE_SIZES = (500, 2000, 10000, 50000)
MS_PER_DAY = 86_400_000


@dataclass
class TableProbe:
    name: str
    exposed: bool
    key: str | None = None
    records: int | None = None
    change_tracking: bool = False
    missing_fields: list[str] = field(default_factory=list)


@dataclass
class ProbeReport:
    version: str | None = None
    cookie_name: str | None = None
    deleted_records_exposed: bool = False
    tables: list[TableProbe] = field(default_factory=list)
    time_unit: str | None = None
    date_filter: dict[str, str] = field(default_factory=dict)
    largest_page: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(client: FourDClient) -> str | None:
    try:
        info = client.get_json("/rest/$info", what="read 4D $info")
    except FourDError as exc:
        return f"unknown ($info refused: HTTP {exc.status})"
    for key in ("version", "4DVersion", "serverVersion"):
        if isinstance(info, dict) and info.get(key):
            return str(info[key])
    return "unknown ($info has no version field)"


def _time_unit(client: FourDClient, table: str, key: str) -> str | None:
    page = client.page(table, attributes=(key, "ModifiedTime"), top=200)
    values = [e["ModifiedTime"] for e in page.entities if isinstance(e.get("ModifiedTime"), int | float)]
    if not values or max(values) == 0:
        return None
    top = max(values)
    if top > 86_400:
        return "milliseconds" if top < MS_PER_DAY else f"unknown (largest value {top})"
    return "seconds (all values <= 86400; check a record saved in the afternoon)"


def _date_filter(client: FourDClient, table: str) -> dict[str, str]:
    results: dict[str, str] = {}
    for label, value in (("YYYY-MM-DD", "2000-01-01"), ("d!m!yyyy", "1!1!2000")):
        try:
            page = client.page(table, where=Filter("ModifiedDate>=:1", (value,)), top=1)
            results[label] = f"accepted ({page.count} records on or after 2000-01-01)"
        except FourDError as exc:
            results[label] = f"refused: {exc}"
    return results


def _largest_page(client: FourDClient, table: str, key: str, attributes: tuple[str, ...]) -> dict[str, Any]:
    timings: dict[str, float] = {}
    largest = None
    for size in PAGE_SIZES:
        started = time.perf_counter()
        try:
            page = client.page(table, attributes=attributes, order_by=f"{key} asc", top=size)
        except FourDError as exc:
            timings[str(size)] = -1.0
            return {"table": table, "largest": largest, "seconds": timings, "stopped": str(exc)}
        elapsed = time.perf_counter() - started
        timings[str(size)] = round(elapsed, 3)
        if elapsed > client.settings.read_timeout / 2:
            break
        largest = min(size, len(page.entities)) if page.count and page.count < size else size
        if page.count is not None and page.count <= size:
            break  # the whole table fits: larger pages would say nothing more
    return {"table": table, "largest": largest, "seconds": timings}


def probe(client: FourDClient) -> ProbeReport:
    """Ask the server everything a sync needs to know; read-only, one session."""
    report = ProbeReport()
    catalog = set(client.catalog())  # logs in first, so the cookie name is known below
    stored = client.auth.store.load()
    report.cookie_name = stored[0] if stored else None
    report.version = _version(client)
    report.deleted_records_exposed = "__DeletedRecords" in catalog
    biggest: tuple[int, str, str] | None = None
    for table in TABLES:
        entry = TableProbe(table.name, exposed=table.name in catalog)
        if entry.exposed:
            body = client.get_json(f"/rest/$catalog/{table.name}", what=f"read 4D $catalog/{table.name}")
            keys = [k.get("name") for k in body.get("key", []) if isinstance(k, dict)]
            entry.key = keys[0] if keys else None
            attributes = {
                a["name"] for a in body.get("attributes", []) if isinstance(a, dict) and "name" in a
            }
            entry.change_tracking = "__GlobalStamp" in attributes
            entry.missing_fields = [f for f in table.attributes if f not in attributes]
            entry.records = client.page(table.name, attributes=(table.key,), top=1).count
            if entry.records and (biggest is None or entry.records > biggest[0]):
                biggest = (entry.records, table.name, table.key)
        report.tables.append(entry)
    if biggest:
        _, name, key = biggest
        report.time_unit = _time_unit(client, name, key)
        report.date_filter = _date_filter(client, name)
        fields = next(t.attributes for t in TABLES if t.name == name)
        report.largest_page = _largest_page(client, name, key, fields)
    return report
