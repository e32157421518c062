"""Extract one legacy table from 4D and land it, as received, in ``legacy_staging.<table>_raw``.

Pages stream from 4D into one ``COPY`` while the next page is fetched and the one after it is
encoded (a reader thread and an encoder thread, each at most two pages ahead), so memory is
bounded by the page size, not the table size. The whole
landing of a table is one transaction that first removes what an earlier try of the same run
landed: re-running a task never duplicates rows.

What one extract lands, in order:

1. the run's change window of the table (its strategy, see ``registry.Strategy``, from the
   watermark in ``legacy_sync.sync_state`` to the run's window end, taken once per run);
2. the records rejected earlier only because of other records (a missing parent, a business
   key held elsewhere), read again by key, so they load as soon as what they wait for arrives;
   a key 4D no longer has is recorded as deleted;
3. for a read of the whole table, whether what landed matches 4D's ``__COUNT``: only then may
   the merge delete ERP rows missing from 4D; and whether 4D's count of the table dropped so
   far since the last run that deletions must wait for a person.

A value that cannot be stored faithfully (NUL, a lone surrogate, an integer wider than 64 bits)
fails only its record: it is replaced and noted in ``__landing_issues``, which the dbt staging
models turn into a rejection reason. The watermark is *not* moved here: the summary moves it
once the data is merged into ``erp``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import sql

from legacy_sync import ledger
from legacy_sync.fourd import FourDClient, FourDError
from legacy_sync.fourd.client import Filter
from legacy_sync.fourd.wire import Page, clean_timestamp, entity_key
from legacy_sync.ledger import Batch, HoldPolicy, RunWindow
from legacy_sync.registry import TABLES, LegacyTable, Strategy

log = logging.getLogger(__name__)
T = TypeVar("T")

MODIFIED_DATE_LOOKBACK = dt.timedelta(days=1)
"""Re-read this much before the last ModifiedDate seen: 4D dates have no time zone and
ModifiedTime is not filterable with it, so the boundary day is always read again."""

RETRY_LIMIT = 10_000
"""Records read again by key per table and run (the oldest rejects first)."""

_NUL = b"\\u0000"
_VALUE_ISSUES = "__value_issues"  # what the 4D client could not read faithfully (fourd/wire.py)
READ_AGAIN = "__read_again"
"""Marks a record read again by key because it waited for another record: still rejected, it
stays an open reject of an earlier run rather than a new reject of this one."""


# -- one record -> one landing row ---------------------------------------------------------------


def _encode(entity: dict[str, Any], key_attribute: str) -> tuple[str, bytes, str]:
    """(legacy_id, payload JSON bytes, row hash) for one 4D entity; ``entity`` is consumed.

    The payload is the record as 4D sent it, so a rejected record can be shown and replayed
    exactly. The row hash covers the business attributes only: a save that changes nothing
    but 4D's stamps is not a change. One JSON encoding serves both (this is the hot loop of
    a sync: ~1 µs here is ~1 s per million records).
    """
    key = entity_key(entity, key_attribute)
    system = {k: entity.pop(k) for k in [k for k in entity if k.startswith("__")]}
    issues: list[str] = list(system.pop(_VALUE_ISSUES, None) or [])
    if "__TIMESTAMP" in system:
        system["__TIMESTAMP"] = clean_timestamp(system["__TIMESTAMP"])
    business = orjson.dumps(entity)
    if _NUL in business:
        business, found = _without_nul(entity)
        issues += found
    head = orjson.dumps(system)
    if _NUL in head or (isinstance(key, str) and "\x00" in key):
        cleaned, found = _without_nul(system)
        system, head = orjson.loads(cleaned), cleaned
        issues += found
        if isinstance(key, str):
            key = key.replace("\x00", "\ufffd")
    if issues:
        system["__landing_issues"] = issues
        head = orjson.dumps(system)
    row_hash = hashlib.md5(business, usedforsecurity=False).hexdigest()
    return str(key), _payload(head, business, bool(system)), row_hash


def _payload(head: bytes, business: bytes, has_system: bool) -> bytes:
    """One JSON object: the system attributes (``head``) first, then the business ones."""
    if not has_system:
        return business
    if business == b"{}":
        return head
    return head[:-1] + b"," + business[1:]


def _without_nul(values: dict[str, Any]) -> tuple[bytes, list[str]]:
    """PostgreSQL cannot store U+0000 (in jsonb nor in text): replace it and say so, so the
    mapping rejects the record with that reason instead of the whole COPY failing."""
    bad = sorted(k for k, v in values.items() if isinstance(v, str) and "\x00" in v)
    cleaned = {k: (v.replace("\x00", "\ufffd") if isinstance(v, str) else v) for k, v in values.items()}
    issues = [f"{name} contains NUL characters (U+0000), which PostgreSQL cannot store" for name in bad]
    return orjson.dumps(cleaned), issues


def _copy_text(value: str) -> bytes:
    """A value in COPY's text format (backslash, tab and line breaks escaped)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").encode()


_SYSTEM = ("__KEY", "__TIMESTAMP", "__STAMP", "__GlobalStamp", READ_AGAIN)
"""The system attributes 4D sends (and the mark of a record read again): popped by name in the
common case instead of testing every attribute's name."""
_ABSENT = object()
_MORE_SYSTEM = b'"__'
"""In a business part's JSON: maybe an attribute whose name starts with ``__`` (or a text
value that does; both take the general path)."""


def copy_block(
    entities: list[dict[str, Any]], key_attribute: str, run_id: str, *, read_again: bool = False
) -> bytes:
    """One page as COPY text rows ``run_id, legacy_id, payload, row_hash``: one write per page.

    JSON from orjson holds no raw tab or line break, so only its backslashes need doubling.

    The common record (a number or plain text for a key, the usual system attributes, no NUL,
    nothing the client had to repair) is encoded inline, with what :func:`_encode` does for
    every record done once per page; anything else goes through :func:`_encode` itself. Both
    give the same legacy id, the same row hash and the same payload (as jsonb: the system
    attributes may come in another order).
    """
    prefix = _copy_text(run_id) + b"\t"
    rows: list[bytes] = []
    add = rows.append
    dumps = orjson.dumps
    md5 = hashlib.md5
    for entity in entities:
        if read_again:
            entity[READ_AGAIN] = True
        key = entity.get(key_attribute)
        if type(key) is int:
            legacy_id = str(key).encode()
        elif type(key) is str and key.isalnum() and key.isascii():
            legacy_id = key.encode()  # nothing COPY needs escaped
        else:
            add(_encoded_row(prefix, entity, key_attribute))
            continue
        pop = entity.pop
        system = {}
        for name in _SYSTEM:
            value = pop(name, _ABSENT)
            if value is not _ABSENT:
                system[name] = value
        business = dumps(entity)
        if _MORE_SYSTEM in business or _NUL in business:
            entity.update(system)  # appended: the business attributes keep their order
            add(_encoded_row(prefix, entity, key_attribute))
            continue
        stamp = system.get("__TIMESTAMP")
        if stamp is not None:
            system["__TIMESTAMP"] = clean_timestamp(stamp)
        head = dumps(system)
        if _NUL in head:
            if stamp is not None:
                system["__TIMESTAMP"] = stamp
            entity.update(system)
            add(_encoded_row(prefix, entity, key_attribute))
            continue
        payload = _payload(head, business, bool(system))
        if b"\\" in payload:
            payload = payload.replace(b"\\", b"\\\\")
        add(
            b"%b%b\t%b\t%b\n"
            % (prefix, legacy_id, payload, md5(business, usedforsecurity=False).hexdigest().encode())
        )
    return b"".join(rows)


def _encoded_row(prefix: bytes, entity: dict[str, Any], key_attribute: str) -> bytes:
    """One COPY row through :func:`_encode` (the general path)."""
    key, payload, row_hash = _encode(entity, key_attribute)
    return b"%b%b\t%b\t%b\n" % (prefix, _copy_text(key), payload.replace(b"\\", b"\\\\"), row_hash.encode())


# -- reading pages while writing ---------------------------------------------------------------


def _ahead(items: Iterable[T], name: str, depth: int = 2) -> Generator[T, None, None]:
    """Iterate ``items`` in a thread named ``name``, at most ``depth`` items ahead of the caller.

    The items come in their order; an exception raised while producing them is raised to the
    caller in its place. When the caller stops early (an error, or it closes the generator),
    the thread stops at its next item and closes ``items`` (an inner stage stops in turn).
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        outcome: Any = done
        try:
            while not stop.is_set():  # checked before asking for the next item (an HTTP request)
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                buffer.put(item)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            outcome = exc
        finally:
            close = getattr(iterator, "close", None)
            try:
                if close is not None:
                    close()
            except BaseException as exc:
                outcome = exc if outcome is done else outcome
        buffer.put(outcome)  # a consumer that stopped drains the queue until this thread ends

    thread = threading.Thread(target=produce, name=name, daemon=True)
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
        while thread.is_alive():  # unblock a producer waiting on a full queue
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


# -- which slice to read ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Which slice of a table to read in this run."""

    strategy: Strategy
    where: Filter | None
    complete_key_set: bool
    watermark_from: str | None
    stamp_window: tuple[int, int] | None = None


def current_stamp(client: FourDClient, table: LegacyTable) -> int | None:
    """The server's global stamp now (the open end of a window)."""
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


def measure_window(client: FourDClient) -> RunWindow:
    """The run's window end and 4D's today, asked once per run for every table.

    4D's global stamp is datastore-wide: the envelope of any tracked table carries it (an
    untracked table's says 0, a refused one answers an error; both are skipped). Old servers
    omit it: then the highest record stamp of the tracked tables + 1 closes the window.
    """
    stamp = None
    tracked = []
    for table in TABLES:
        try:
            page = client.page(table.name, attributes=(table.key,), top=1)
        except FourDError:
            continue
        if page.global_stamp:
            stamp = page.global_stamp
            break
        tracked.append(table)
    if stamp is None:
        for table in tracked:
            try:
                found = current_stamp(client, table)
            except FourDError:  # untracked: no __GlobalStamp to sort by
                continue
            stamp = max(stamp or 0, found or 0) or None
    return RunWindow(stamp, client.server_date())


def plan_extract(
    client: FourDClient,
    table: LegacyTable,
    attributes: dict[str, Any],
    mode: str,
    state: tuple[str, str | None] | None,
    window_end: int | None = None,
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
        end = window_end if window_end is not None else current_stamp(client, table)
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


def check_catalog(
    client: FourDClient, table: LegacyTable, attributes: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """4D's attributes of the table (``attributes`` when the drift check already read them); fails
    when a registry field the mapping needs is not exposed at all. A missing warn-only field (not
    mapped, e.g. ModifiedTime) is left out of the read: the records load with a warning."""
    attributes = client.attributes(table.name) if attributes is None else attributes
    optional = {f.name for f in table.fields if f.warn_only}
    missing = [f for f in table.attributes if f not in attributes and f not in optional]
    if missing:
        raise FourDError(
            f"{table.name}: 4D's catalog lacks field(s) {', '.join(missing)}; they may have been renamed or "
            "not exposed as REST resources. Fix the 4D structure or the table registry."
        )
    extra = sorted(
        a
        for a in attributes
        if a not in table.attributes
        and not a.startswith("__")
        and attributes[a].get("kind", "storage") == "storage"
    )
    warnings = [f"4D exposes fields the registry does not sync: {', '.join(extra)}"] if extra else []
    absent = [f for f in table.attributes if f not in attributes]
    if absent:
        warnings.append(f"4D no longer sends {', '.join(absent)} (not mapped): read without it")
    return attributes, warnings


def wanted_attributes(table: LegacyTable, attributes: dict[str, Any]) -> tuple[str, ...]:
    """What ``$attributes`` asks for: the registry's fields 4D has, and ``__GlobalStamp`` when the
    table is tracked (the version the merge compares)."""
    fields = tuple(a for a in table.attributes if a in attributes)
    return (*fields, "__GlobalStamp") if "__GlobalStamp" in attributes else fields


# -- landing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """One page, encoded: what the COPY writes and what the writer counts."""

    data: bytes
    records: int
    count: int | None
    newest: dt.date | None


class _Writer:
    """The COPY of one extract: pages in, counts out.

    Three stages overlap, each a page or two ahead of the next (so memory stays bounded by the
    page size): a thread reads and parses 4D's pages (the HTTP wait), a thread encodes them
    into COPY blocks (:func:`copy_block`), and the caller's thread writes each block to
    PostgreSQL (the COPY's wait), in page order. A failure in either thread is raised here, so
    the COPY and its transaction fail with it.
    """

    def __init__(self, copy: Any, table: LegacyTable, run_id: str) -> None:
        self.copy = copy
        self.table = table
        self.run_id = run_id
        self.records = 0
        self.newest: dt.date | None = None
        self.progress = Progress(table.name)

    def _encode(self, pages: Iterable[Page], track_dates: bool) -> Iterator[_Block]:
        reader = _ahead(pages, "4d-page-reader")
        try:
            for page in reader:
                newest = None
                if track_dates:
                    for entity in page.entities:
                        seen = _modified_date(entity)
                        if seen and (newest is None or seen > newest):
                            newest = seen
                data = copy_block(page.entities, self.table.key, self.run_id)
                yield _Block(data, len(page.entities), page.count, newest)
        finally:
            reader.close()

    def write(self, pages: Iterable[Page], track_dates: bool = False) -> Iterator[int | None]:
        """Write every page; yields each page's ``count`` (4D's ``__COUNT``) once it is written."""
        for block in _ahead(self._encode(pages, track_dates), "copy-encoder"):
            if block.newest and (self.newest is None or block.newest > self.newest):
                self.newest = block.newest
            self.copy.write(block.data)
            self.records += block.records
            self.progress.add(block.records, block.count)
            yield block.count


def land_table(
    client: FourDClient,
    conn: psycopg.Connection[Any],
    table: LegacyTable,
    run_id: str,
    mode: str,
    state: tuple[str, str | None] | None = None,
    *,
    window: RunWindow | None = None,
    policy: HoldPolicy | None = None,
    retry_limit: int = RETRY_LIMIT,
    catalog: dict[str, Any] | None = None,
) -> Batch:
    """Extract ``table`` per its plan and land it for ``run_id`` in one transaction.

    The steps: plan (what to read, from which watermark), copy the pages into staging, move the
    watermark, land deletions and records read again, hold deletions that look like a loss.

    ``catalog``: 4D's attributes of the table when the caller read them already (drift check).
    """
    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    attributes, warnings = check_catalog(client, table, catalog)
    window = window or measure_window(client)
    plan = plan_extract(client, table, attributes, mode, state, window.stamp)
    batch = _start_batch(table, mode, plan, window, warnings)
    # A tracked table's records carry their __GlobalStamp: the version the merge compares.
    wanted = wanted_attributes(table, attributes)
    with conn.transaction():
        writer = _copy_pages(client, conn, table, run_id, plan, wanted, batch)
        if plan.strategy is Strategy.MODIFIED_DATE:
            batch.watermark_to = _modified_date_watermark(writer.newest, plan, window, batch.warnings)
        batch.table_count = _table_count(client, table, plan, batch)
        if plan.stamp_window is not None:
            batch.deleted_keys = _land_deleted(client, conn, table, run_id, plan.stamp_window)
        retried, gone = _land_retries(client, conn, table, run_id, retry_limit, wanted)
        batch.records_retried = retried
        batch.records_landed += retried
        batch.deleted_keys += gone
        _hold_suspicious_deletions(conn, run_id, table, batch, policy or HoldPolicy())
        batch.seconds = round(time.monotonic() - started, 3)
        ledger.record_batch(conn, run_id, batch, started_at)
    writer.progress.log()
    return batch


def _start_batch(table: LegacyTable, mode: str, plan: Plan, window: RunWindow, warnings: list[str]) -> Batch:
    """The batch's header from the plan; a stamp-tracked table's watermark is known in advance."""
    batch = Batch(
        table=table.name,
        mode=mode,
        strategy=plan.strategy.value,
        watermark_from=plan.watermark_from,
        warnings=warnings,
    )
    if plan.strategy is Strategy.GLOBAL_STAMP:
        end = plan.stamp_window[1] if plan.stamp_window else window.stamp
        batch.watermark_to = str(end) if end is not None else None
    return batch


def _copy_pages(
    client: FourDClient,
    conn: psycopg.Connection[Any],
    table: LegacyTable,
    run_id: str,
    plan: Plan,
    wanted: tuple[str, ...],
    batch: Batch,
) -> _Writer:
    """COPY the planned pages into ``legacy_staging.<table>_raw`` (an earlier try's rows first go)."""
    raw = sql.Identifier("legacy_staging", table.raw_table)
    _forget_earlier_try(conn, raw, run_id, table)
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("copy {} (run_id, legacy_id, payload, row_hash) from stdin").format(raw)) as copy,
    ):
        writer = _Writer(copy, table, run_id)
        pages = client.iter_by_key(table.name, table.key, attributes=wanted, where=plan.where)
        first_count = None
        for count in writer.write(pages, track_dates=plan.strategy is Strategy.MODIFIED_DATE):
            first_count = count if first_count is None else first_count
        batch.records_landed = writer.records
        batch.source_count = first_count if first_count is not None else 0
    return writer


def _modified_date_watermark(
    newest: dt.date | None, plan: Plan, window: RunWindow, warnings: list[str]
) -> str | None:
    """The newest ModifiedDate landed, never past 4D's today (else the table would stop syncing)."""
    if newest and window.today and newest > window.today:
        warnings.append(
            f"a ModifiedDate after 4D's today ({newest} > {window.today}); the watermark stays at "
            "4D's today so the table keeps syncing"
        )
        newest = window.today
    return newest.isoformat() if newest else plan.watermark_from


def _hold_suspicious_deletions(
    conn: psycopg.Connection[Any], run_id: str, table: LegacyTable, batch: Batch, policy: HoldPolicy
) -> None:
    """The circuit breaker: deletions are held when the table's count dropped too much."""
    batch.hold_reason = policy.count_drop(ledger.previous_table_count(conn, run_id, table), batch.table_count)
    batch.hold_deletes = batch.hold_reason is not None
    if batch.hold_deletes:
        batch.warnings.append(f"deletions held: {batch.hold_reason}")


def _forget_earlier_try(
    conn: psycopg.Connection[Any], raw: sql.Identifier, run_id: str, table: LegacyTable
) -> None:
    conn.execute(sql.SQL("delete from {} where run_id = %s").format(raw), (run_id,))
    conn.execute(
        "delete from legacy_staging.deleted_records_raw where run_id = %s and table_name = %s",
        (run_id, table.name),
    )


def _table_count(client: FourDClient, table: LegacyTable, plan: Plan, batch: Batch) -> int | None:
    """4D's count of the whole table; for a read of the whole table, also whether the key set
    that landed is complete (it matches the count before and after the read), which alone allows
    the merge to delete ERP rows missing from it."""
    count = client.page(table.name, attributes=(table.key,), top=1).count
    if plan.complete_key_set:
        if count is not None and batch.records_landed == count == batch.source_count:
            batch.complete_key_set = True
        else:
            batch.warnings.append(
                f"landed {batch.records_landed:,} records while 4D counted {batch.source_count} before the "
                f"read and {count} after it: 4D changed meanwhile, so deletions are not detected by key "
                "set in this run (the next full sync does it)"
            )
    return count


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


def _land_retries(
    client: FourDClient,
    conn: psycopg.Connection[Any],
    table: LegacyTable,
    run_id: str,
    limit: int,
    attributes: tuple[str, ...],
) -> tuple[int, int]:
    """Read again by key the records waiting for another record; (landed, gone from 4D)."""
    keys = ledger.retry_keys(conn, table, limit, exclude_run=run_id)
    if not keys:
        return 0, 0
    return land_keys(client, conn, table, run_id, keys, attributes, read_again=True)


def land_keys(
    client: FourDClient,
    conn: psycopg.Connection[Any],
    table: LegacyTable,
    run_id: str,
    keys: list[str],
    attributes: tuple[str, ...] | None = None,
    *,
    read_again: bool = False,
) -> tuple[int, int]:
    """Land exactly these records, read by key; a key 4D does not return is recorded as deleted.
    Returns (records landed, keys gone)."""
    raw = sql.Identifier("legacy_staging", table.raw_table)
    found: set[str] = set()
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("copy {} (run_id, legacy_id, payload, row_hash) from stdin").format(raw)) as copy,
    ):
        for page in client.get_records(
            table.name, table.key, keys, attributes=attributes or table.attributes
        ):
            found.update(str(entity_key(e, table.key)) for e in page.entities)
            copy.write(copy_block(page.entities, table.key, run_id, read_again=read_again))
    gone = [k for k in keys if k not in found]
    if gone:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into legacy_staging.deleted_records_raw (run_id, table_name, legacy_id)"
                " values (%s, %s, %s)",
                [(run_id, table.name, k) for k in gone],
            )
    log.info("%s: read %d record(s) again by key, %d gone from 4D", table.name, len(found), len(gone))
    return len(found), len(gone)


def land_repair(
    client: FourDClient, conn: psycopg.Connection[Any], table: LegacyTable, run_id: str, keys: list[str]
) -> Batch:
    """A targeted repair: read exactly ``keys`` again and land them; no watermark moves."""
    started = time.monotonic()
    attributes, _ = check_catalog(client, table)
    wanted = wanted_attributes(table, attributes)
    batch = Batch(table=table.name, mode=ledger.Mode.REPAIR.value, strategy="by_key")
    raw = sql.Identifier("legacy_staging", table.raw_table)
    with conn.transaction():
        _forget_earlier_try(conn, raw, run_id, table)
        batch.records_landed, batch.deleted_keys = land_keys(client, conn, table, run_id, keys, wanted)
        batch.source_count = batch.records_landed
        batch.seconds = round(time.monotonic() - started, 3)
        ledger.record_batch(conn, run_id, batch)
    return batch


def land_replay(conn: psycopg.Connection[Any], table: LegacyTable, run_id: str) -> Batch:
    """Land, for ``run_id``, the stored raw data of this table's open rejects, so dbt maps them
    again without reading 4D (after a mapping fix). Records 4D deleted since are no longer open
    rejects; the merge never writes a version older than the one the ERP holds. No watermark moves.
    """
    started = time.monotonic()
    raw = sql.Identifier("legacy_staging", table.raw_table)
    batch = Batch(table=table.name, mode=ledger.Mode.REPLAY.value, strategy=ledger.Mode.REPLAY.value)
    with conn.transaction():
        _forget_earlier_try(conn, raw, run_id, table)
        cursor = conn.execute(
            sql.SQL(
                """
                insert into {raw} (run_id, legacy_id, payload, row_hash)
                select %(run)s, r.record_id, r.record_data,
                       md5((r.record_data - '__KEY' - '__STAMP' - '__TIMESTAMP' - '__GlobalStamp')::text)
                from ({replayable}) r
                """
            ).format(raw=raw, replayable=ledger.replayable(conn, table)),
            {"run": run_id},
        )
        batch.records_landed = cursor.rowcount
        batch.seconds = round(time.monotonic() - started, 3)
        ledger.record_batch(conn, run_id, batch)
    log.info("%s: replaying %d previously rejected records", table.name, batch.records_landed)
    return batch
