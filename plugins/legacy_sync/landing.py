"""Extract one legacy table from 4D and land it, as received, in ``legacy_staging.<table>_raw``.

Pages stream from 4D into one ``COPY`` while the next page is fetched (a reader thread and a
queue two pages deep), so memory is bounded by the page size, not the table size. The whole
landing of a table is one transaction that first removes what an earlier try of the same run
landed: re-running a task never duplicates rows.

Which records to extract depends on the table's strategy (see ``registry.Strategy``) and the
watermark in ``legacy_sync.sync_state``. The watermark is *not* moved here: the summary task
moves it once the data is merged into ``erp``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from legacy_sync.fourd import FourDClient, FourDError
from legacy_sync.fourd.client import Filter
from legacy_sync.fourd.wire import Page, clean_timestamp, entity_key
from legacy_sync.registry import LegacyTable, Strategy

log = logging.getLogger(__name__)

MODIFIED_DATE_LOOKBACK = dt.timedelta(days=1)
"""Re-read this much before the last ModifiedDate seen: 4D dates have no time zone and
ModifiedTime is not filterable with it, so the boundary day is always read again."""

_NUL = b"\\u0000"


@dataclass
class LandingResult:
    """What one table's extract landed; returned to Airflow (XCom) and kept in landing_batch."""

    table: str
    mode: str
    strategy: str
    records_landed: int = 0
    source_count: int | None = None
    deleted_keys: int = 0
    complete_key_set: bool = False
    watermark_from: str | None = None
    watermark_to: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """Which slice of a table to read in this run."""

    strategy: Strategy
    where: Filter | None
    complete_key_set: bool
    watermark_from: str | None
    stamp_window: tuple[int, int] | None = None


def _encode(entity: dict[str, Any], key_attribute: str) -> tuple[str, bytes, str]:
    """(legacy_id, payload JSON bytes, row hash) for one 4D entity; ``entity`` is consumed.

    The payload is the record as 4D sent it, so a rejected record can be shown and replayed
    exactly. The row hash covers the business attributes only: a save that changes nothing
    but 4D's stamps is not a change. One JSON encoding serves both (this is the hot loop of
    a sync: ~1 µs here is ~1 s per million records).
    """
    key = entity_key(entity, key_attribute)
    system = {k: entity.pop(k) for k in [k for k in entity if k.startswith("__")]}
    if "__TIMESTAMP" in system:
        system["__TIMESTAMP"] = clean_timestamp(system["__TIMESTAMP"])
    business = orjson.dumps(entity)
    if _NUL in business:
        business, issues = _without_nul(entity)
        if issues:
            system["__landing_issues"] = issues
    row_hash = hashlib.md5(business, usedforsecurity=False).hexdigest()
    head = orjson.dumps(system)
    if not system:
        payload = business
    elif business == b"{}":
        payload = head
    else:
        payload = head[:-1] + b"," + business[1:]
    return str(key), payload, row_hash


def _without_nul(entity: dict[str, Any]) -> tuple[bytes, list[str]]:
    """PostgreSQL cannot store U+0000 in jsonb: replace it and say so, so the mapping rejects
    the record with that reason instead of the whole COPY failing."""
    bad = sorted(k for k, v in entity.items() if isinstance(v, str) and "\x00" in v)
    cleaned = {k: (v.replace("\x00", "\ufffd") if isinstance(v, str) else v) for k, v in entity.items()}
    issues = [f"{name} contains NUL characters (U+0000), which PostgreSQL cannot store" for name in bad]
    return orjson.dumps(cleaned), issues


def prepare_row(entity: dict[str, Any], key_attribute: str) -> tuple[str, str, str]:
    """(legacy_id, payload json, row hash) for one 4D entity (see :func:`_encode`)."""
    key, payload, row_hash = _encode(entity, key_attribute)
    return key, payload.decode(), row_hash


def _copy_text(value: str) -> bytes:
    """A value in COPY's text format (backslash, tab and line breaks escaped)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").encode()


def copy_block(entities: list[dict[str, Any]], key_attribute: str, run_id: str) -> bytes:
    """One page as COPY text rows ``run_id, legacy_id, payload, row_hash``: one write per page.

    JSON from orjson holds no raw tab or line break, so only its backslashes need doubling.
    """
    prefix = _copy_text(run_id) + b"\t"
    out = bytearray()
    for entity in entities:
        key, payload, row_hash = _encode(entity, key_attribute)
        out += prefix
        out += _copy_text(key)
        out += b"\t"
        out += payload.replace(b"\\", b"\\\\")
        out += b"\t"
        out += row_hash.encode()
        out += b"\n"
    return bytes(out)


def _read_ahead(pages: Iterable[Page], depth: int = 2) -> Iterator[Page]:
    """Fetch the next pages in a thread while the caller writes the current one."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def reader() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                buffer.put(page)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            buffer.put(exc)
            return
        buffer.put(done)

    thread = threading.Thread(target=reader, name="4d-page-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(0.05)


class Progress:
    """Logs records landed, share of ``__COUNT`` and rate, at most every few seconds."""

    def __init__(self, table: str, every_seconds: float = 5.0) -> None:
        self.table = table
        self.every = every_seconds
        self.started = self.last = time.monotonic()
        self.total: int | None = None
        self.done = 0

    def add(self, n: int, total_hint: int | None) -> None:
        if self.total is None and total_hint is not None:
            self.total = total_hint
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.log()

    def log(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        share = f" of {self.total:,} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        log.info("%s: %s records%s, %.0f records/s", self.table, f"{self.done:,}", share, self.done / elapsed)


def current_stamp(client: FourDClient, table: LegacyTable) -> int | None:
    """The server's global stamp now (the open end of this run's window)."""
    page = client.page(table.name, attributes=(table.key,), top=1)
    if page.global_stamp:
        return page.global_stamp
    # Old servers omit the envelope stamp: the highest record stamp + 1 closes the window too.
    top = client.page(
        table.name, attributes=(table.key, "__GlobalStamp"), order_by="__GlobalStamp desc", top=1
    )
    if top.entities and top.entities[0].get("__GlobalStamp") is not None:
        return int(top.entities[0]["__GlobalStamp"]) + 1
    return None


def plan_extract(
    client: FourDClient,
    table: LegacyTable,
    attributes: dict[str, Any],
    mode: str,
    state: tuple[str, str | None] | None,
) -> Plan:
    """Choose strategy and window for this run. ``state`` is (strategy, watermark) or None."""
    strategy = table.strategy
    if strategy is Strategy.GLOBAL_STAMP and "__GlobalStamp" not in attributes:
        strategy = Strategy.MODIFIED_DATE if "ModifiedDate" in attributes else Strategy.FULL
        log.warning(
            "%s has no __GlobalStamp (change tracking off in 4D); falling back to %s",
            table.name,
            strategy.value,
        )
    previous = state[1] if state and state[0] == strategy.value else None
    if mode == "full" or strategy is Strategy.FULL or previous is None:
        return Plan(strategy, None, complete_key_set=True, watermark_from=None)
    if strategy is Strategy.GLOBAL_STAMP:
        start = int(previous)
        end = current_stamp(client, table)
        if end is None:
            raise FourDError(
                f"{table.name}: 4D did not report a global stamp; cannot bound the change window"
            )
        where = Filter("__GlobalStamp>=:1 AND __GlobalStamp<:2", (start, end))
        return Plan(strategy, where, False, previous, stamp_window=(start, end))
    since = dt.date.fromisoformat(previous) - MODIFIED_DATE_LOOKBACK
    return Plan(strategy, Filter("ModifiedDate>=:1", (since.isoformat(),)), False, previous)


def _modified_date(entity: dict[str, Any]) -> dt.date | None:
    value = entity.get("ModifiedDate")
    if not isinstance(value, str) or value.count("!") != 2:
        return None
    try:
        day, month, year = (int(p) for p in value.split("!"))
        return dt.date(year, month, day)
    except ValueError:  # "0!0!0" (blank) or garbage: not a usable watermark
        return None


def land_table(
    client: FourDClient,
    conn: psycopg.Connection[Any],
    table: LegacyTable,
    run_id: str,
    mode: str,
    state: tuple[str, str | None] | None = None,
) -> LandingResult:
    """Extract ``table`` per its plan and land it for ``run_id`` in one transaction."""
    started = time.monotonic()
    attributes = client.attributes(table.name)
    missing = [f for f in table.fields if f not in attributes]
    if missing:
        raise FourDError(
            f"{table.name}: 4D's catalog lacks field(s) {', '.join(missing)}; they may have been renamed or "
            "not exposed as REST resources. Fix the 4D structure or the table registry."
        )
    extra = sorted(
        a
        for a in attributes
        if a not in table.fields
        and not a.startswith("__")
        and attributes[a].get("kind", "storage") == "storage"
    )
    plan = plan_extract(client, table, attributes, mode, state)
    result = LandingResult(
        table=table.name,
        mode=mode,
        strategy=plan.strategy.value,
        complete_key_set=plan.complete_key_set,
        watermark_from=plan.watermark_from,
    )
    if extra:
        result.warnings.append(f"4D exposes fields the registry does not sync: {', '.join(extra)}")
    if plan.strategy is Strategy.GLOBAL_STAMP and plan.stamp_window is None:
        # A full read under change tracking still needs the window's end as the next watermark.
        stamp = current_stamp(client, table)
        result.watermark_to = str(stamp) if stamp is not None else None
    elif plan.stamp_window is not None:
        result.watermark_to = str(plan.stamp_window[1])

    wanted = tuple(dict.fromkeys(table.fields))
    progress = Progress(table.name)
    newest: dt.date | None = None
    raw = sql.Identifier("legacy_staging", table.raw_table)
    with conn.transaction():
        conn.execute(sql.SQL("delete from {} where run_id = %s").format(raw), (run_id,))
        conn.execute(
            "delete from legacy_staging.deleted_records_raw where run_id = %s and table_name = %s",
            (run_id, table.name),
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                sql.SQL("copy {} (run_id, legacy_id, payload, row_hash) from stdin").format(raw)
            ) as copy,
        ):
            pages = client.iter_by_key(table.name, table.key, attributes=wanted, where=plan.where)
            for page in _read_ahead(pages):
                if result.source_count is None:
                    result.source_count = page.count
                if plan.strategy is Strategy.MODIFIED_DATE:
                    for entity in page.entities:
                        seen = _modified_date(entity)
                        newest = seen if seen and (newest is None or seen > newest) else newest
                copy.write(copy_block(page.entities, table.key, run_id))
                result.records_landed += len(page.entities)
                progress.add(len(page.entities), page.count)
        if plan.strategy is Strategy.MODIFIED_DATE:
            result.watermark_to = newest.isoformat() if newest else plan.watermark_from
        if plan.stamp_window is not None:
            result.deleted_keys = _land_deleted(client, conn, table, run_id, plan.stamp_window)
        if result.source_count is None:
            result.source_count = 0
        result.seconds = round(time.monotonic() - started, 3)
        _record_batch(conn, run_id, result)
    progress.log()
    return result


def _land_deleted(
    client: FourDClient,
    conn: psycopg.Connection[Any],
    table: LegacyTable,
    run_id: str,
    window: tuple[int, int],
) -> int:
    count = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "copy legacy_staging.deleted_records_raw (run_id, table_name, legacy_id, stamp) from stdin"
        ) as copy,
    ):
        for rows in client.iter_deleted(table.name, *window):
            for row in rows:
                copy.write_row((run_id, table.name, str(row.get("__PrimaryKey")), row.get("__Stamp")))
            count += len(rows)
    return count


def _record_batch(conn: psycopg.Connection[Any], run_id: str, result: LandingResult) -> None:
    conn.execute(
        """
        insert into legacy_sync.landing_batch (run_id, table_name, mode, strategy, complete_key_set,
            records_landed, source_count, deleted_keys, watermark_from, watermark_to, finished_at)
        values (%(run_id)s, %(table)s, %(mode)s, %(strategy)s, %(complete_key_set)s, %(records_landed)s,
            %(source_count)s, %(deleted_keys)s, %(watermark_from)s, %(watermark_to)s, now())
        on conflict (run_id, table_name) do update set mode = excluded.mode, strategy = excluded.strategy,
            complete_key_set = excluded.complete_key_set, records_landed = excluded.records_landed,
            source_count = excluded.source_count, deleted_keys = excluded.deleted_keys,
            watermark_from = excluded.watermark_from, watermark_to = excluded.watermark_to,
            started_at = now(), finished_at = now()
        """,
        {"run_id": run_id, **result.as_dict()},
    )


def read_state(conn: psycopg.Connection[Any], table: LegacyTable) -> tuple[str, str | None] | None:
    """(strategy, watermark) of a table, or None before its first merged run."""
    row = conn.execute(
        "select strategy, watermark from legacy_sync.sync_state where table_name = %s", (table.name,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def land_replay(conn: psycopg.Connection[Any], table: LegacyTable, run_id: str) -> LandingResult:
    """Land, for ``run_id``, the stored raw data of this table's records that are still rejected.

    For after a mapping fix: dbt maps them again without reading 4D. A record counts as still
    rejected when its latest ``sync_error`` row is newer than its ERP row (if any). The batch
    moves no watermark: what 4D changed meanwhile is the next normal run's business.
    """
    started = time.monotonic()
    raw = sql.Identifier("legacy_staging", table.raw_table)
    erp_table = conn.execute("select to_regclass(%s)", (f"erp.{table.snake_name}",)).fetchone()
    loaded_since = (
        sql.SQL(
            "and not exists (select 1 from {} t where t.legacy_id::text = e.record_id"
            " and not t.is_deleted and t.synced_at > e.created_at)"
        ).format(sql.Identifier("erp", table.snake_name))
        if erp_table and erp_table[0]
        else sql.SQL("")
    )
    result = LandingResult(table=table.name, mode="replay", strategy="replay")
    with conn.transaction():
        conn.execute(sql.SQL("delete from {} where run_id = %s").format(raw), (run_id,))
        cursor = conn.execute(
            sql.SQL(
                """
                insert into {raw} (run_id, legacy_id, payload, row_hash)
                select %(run)s, e.record_id, e.record_data,
                       md5((e.record_data - '__KEY' - '__STAMP' - '__TIMESTAMP' - '__GlobalStamp')::text)
                from (
                    select distinct on (e.record_id) e.record_id, e.record_data, e.created_at
                    from legacy_sync.sync_error e
                    join legacy_sync.sync_log l on l.id = e.sync_log_id
                    where l.table_name = %(table)s and l.run_id <> %(run)s
                    order by e.record_id, e.id desc
                ) e
                where e.record_data is not null {loaded_since}
                """
            ).format(raw=raw, loaded_since=loaded_since),
            {"run": run_id, "table": table.name},
        )
        result.records_landed = cursor.rowcount
        result.seconds = round(time.monotonic() - started, 3)
        _record_batch(conn, run_id, result)
    log.info("%s: replaying %d previously rejected records", table.name, result.records_landed)
    return result
