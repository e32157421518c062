"""Freshness: per table, the age of its last successful sync, and an alert when it is too old.

A table's limit is ``registry.LegacyTable.stale_after_minutes``, else
``LEGACY_SYNC_STALE_AFTER_MINUTES`` (one limit for every other table), else three intervals of the
hourly DAG's schedule (``LEGACY_SYNC_SCHEDULE``, default ``@hourly``: three hours). "Successful"
means the table's sync log said ``COMPLETED`` or ``PARTIALLY_COMPLETED`` (it loaded; its rejects
are listed): a table that keeps failing, or a sync that stopped running at all (paused DAG,
broken scheduler, a 4D that refuses every login), goes stale the same way.

The watchdog DAG ``legacy_erp_freshness`` (every 15 minutes, ``LEGACY_SYNC_FRESHNESS_SCHEDULE``)
runs :func:`check` even when no sync runs: when a table passes its limit, one alert goes out
(notifiers, task log) and an episode opens in ``legacy_sync.freshness_alert``; while it stays
stale nothing more is sent; the first check after a run synced it closes the episode and says it
recovered. The monitor shows the same ages, computed from the sync log, and the stale tables
until they recover. It reads 4D nothing and takes no licence.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row

from legacy_sync import cutover_ledger, erp_db, notify
from legacy_sync.registry import TABLES, LegacyTable

log = logging.getLogger(__name__)

SCHEDULE_ENV = "LEGACY_SYNC_SCHEDULE"
LIMIT_ENV = "LEGACY_SYNC_STALE_AFTER_MINUTES"
DEFAULT_SCHEDULE = "@hourly"
INTERVALS = 3
_PRESETS = {
    "@hourly": dt.timedelta(hours=1),
    "@daily": dt.timedelta(days=1),
    "@midnight": dt.timedelta(days=1),
    "@weekly": dt.timedelta(weeks=1),
    "@monthly": dt.timedelta(days=31),
    "@quarterly": dt.timedelta(days=92),
    "@yearly": dt.timedelta(days=366),
    "@annually": dt.timedelta(days=366),
}
SUCCESS = ("COMPLETED", "PARTIALLY_COMPLETED")

LAST_SUCCESS_SQL = """
select
    l.table_name,
    max(l.end_time) filter (where l.status in ('COMPLETED', 'PARTIALLY_COMPLETED')) as last_success,
    (array_agg(l.run_id order by l.end_time desc nulls last)
        filter (where l.status in ('COMPLETED', 'PARTIALLY_COMPLETED')))[1] as last_success_run,
    min(l.created_at) as first_seen
from legacy_sync.sync_log as l
group by l.table_name
"""
"""Per table: when it last synced successfully, by which run, and when it was first tried."""


def schedule_interval(schedule: str | None = None, now: dt.datetime | None = None) -> dt.timedelta:
    """The time between two runs of a schedule (a preset or a cron expression)."""
    schedule = (schedule or os.environ.get(SCHEDULE_ENV) or DEFAULT_SCHEDULE).strip()
    if schedule in _PRESETS:
        return _PRESETS[schedule]
    from croniter import croniter  # type: ignore[import-untyped]

    start = now or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    it = croniter(schedule, start)
    first = it.get_next(dt.datetime)
    return it.get_next(dt.datetime) - first


def limit_for(table: LegacyTable, schedule: str | None = None) -> dt.timedelta:
    """The registry's limit of the table, else ``LEGACY_SYNC_STALE_AFTER_MINUTES``, else three
    intervals of the hourly DAG's schedule."""
    if table.stale_after_minutes is not None:
        return dt.timedelta(minutes=table.stale_after_minutes)
    configured = os.environ.get(LIMIT_ENV, "").strip()
    if configured:
        return dt.timedelta(minutes=float(configured))
    return INTERVALS * schedule_interval(schedule)


@dataclass(frozen=True)
class TableAge:
    """One table's freshness now."""

    table: str
    last_success: dt.datetime | None
    last_success_run: str | None
    age: dt.timedelta | None
    limit: dt.timedelta
    stale: bool

    def describe(self) -> str:
        if self.last_success is None:
            return f"{self.table}: never synced successfully (limit {_span(self.limit)})"
        assert self.age is not None
        return (
            f"{self.table}: last successful sync {_span(self.age)} ago at "
            f"{self.last_success.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC (limit {_span(self.limit)})"
        )


def _span(value: dt.timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes or not parts else []
    return " ".join(parts)


def ages(rows: Iterable[Mapping[str, Any]], now: dt.datetime, schedule: str | None = None) -> list[TableAge]:
    """Every registry table's freshness from :data:`LAST_SUCCESS_SQL` rows (pure). A table no run
    has tried yet is not stale; one tried but never synced for longer than its limit is."""
    by_table = {row["table_name"]: row for row in rows}
    found = []
    for table in TABLES:
        row = by_table.get(table.name)
        limit = limit_for(table, schedule)
        if row is None:
            found.append(TableAge(table.name, None, None, None, limit, False))
            continue
        last = row["last_success"]
        age = now - last if last is not None else None
        # Never synced: stale once it has been tried for longer than the limit.
        waited = age if age is not None else now - row["first_seen"]
        stale = waited > limit
        found.append(TableAge(table.name, last, row["last_success_run"], age, limit, stale))
    return found


def table_ages(conn: Any, now: dt.datetime | None = None) -> list[TableAge]:
    now = now or dt.datetime.now(dt.UTC)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(LAST_SUCCESS_SQL).fetchall()
    return ages(rows, now)


@dataclass(frozen=True)
class FreshnessOutcome:
    stale: list[TableAge]
    alerted: list[TableAge]
    recovered: list[TableAge]


def check(
    conninfo: str, now: dt.datetime | None = None, context: Mapping[str, Any] | None = None
) -> FreshnessOutcome:
    """Alert once per table that went stale, note the tables that recovered."""
    now = now or dt.datetime.now(dt.UTC)
    with erp_db.connect(conninfo, autocommit=True) as conn:
        current = table_ages(conn, now)
        open_alerts = cutover_ledger.open_stale_alerts(conn)
        alerted, recovered = [], []
        for age in current:
            if age.stale:
                limit_minutes = int(age.limit.total_seconds() // 60)
                if cutover_ledger.open_stale_alert(conn, age.table, age.last_success, limit_minutes, now):
                    alerted.append(age)
            elif age.table in open_alerts and cutover_ledger.close_stale_alert(
                conn, age.table, now, age.last_success_run
            ):
                recovered.append(age)
    stale = [a for a in current if a.stale]
    if alerted:
        notify.send(
            notify.Message(
                kind="freshness",
                subject="[legacy sync] stale: " + ", ".join(a.table for a in alerted),
                sections=[
                    notify.Section("Stale tables", [a.describe() for a in alerted]),
                    notify.Section(
                        "What to check",
                        [
                            "is the legacy_erp_sync DAG paused, or its runs failing? (the monitor lists why)",
                            "can the sync log in to 4D (licences, password) and reach the ERP database?",
                        ],
                    ),
                ],
                link=notify.monitor_url("/cutover"),
                data={"stale": [a.table for a in alerted]},
            ),
            context,
        )
    if recovered:
        notify.send(
            notify.Message(
                kind="freshness_recovered",
                subject="[legacy sync] fresh again: " + ", ".join(a.table for a in recovered),
                sections=[notify.Section("Recovered", [a.describe() for a in recovered])],
                link=notify.monitor_url("/cutover"),
                data={"recovered": [a.table for a in recovered]},
            ),
            context,
        )
    for age in stale:
        log.warning("stale: %s", age.describe())
    return FreshnessOutcome(stale, alerted, recovered)
