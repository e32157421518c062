"""Reconciliation: does every 4D record of a merged table sit in ``erp`` or in the rejects?

Two checks per table, in this order:

1. **Losses, from the database alone.** Every key this run landed must be a live ERP row or a
   reject of this run; any other key was lost between staging and the ERP, and the table is
   FAILED (its watermark stays, so the next run reads it again). Needs no 4D, so it is always
   done.
2. **4D's count.** 4D's ``__COUNT`` of the table against live ERP rows + open rejects. 4D keeps
   changing while we count, so a difference is reported (with the advice to run a full sync),
   not treated as a loss. When 4D cannot be asked, the table is recorded as "not reconciled".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from legacy_sync import ledger
from legacy_sync.fourd import FourDClient
from legacy_sync.registry import LegacyTable

log = logging.getLogger(__name__)


def check_losses(conn: psycopg.Connection[Any], run_id: str, table: LegacyTable) -> tuple[int, str | None]:
    """(lost records, the failure in words) for one table, from the database alone."""
    missing, examples = ledger.lost_keys(conn, run_id, table)
    if not missing:
        return 0, None
    return missing, (
        f"{missing} record(s) read from 4D in this run are neither in erp.{table.snake_name} nor rejected "
        f"(e.g. {', '.join(examples)}): lost between staging and the ERP; the watermark stays so the next "
        "run reads them again. If it repeats, look for a trigger or a rule on the ERP table."
    )


def count_against_4d(
    client: FourDClient, conn: psycopg.Connection[Any], table: LegacyTable
) -> tuple[int | None, str]:
    """(4D's count, the comparison in words)."""
    source = client.page(table.name, attributes=(table.key,), top=1).count
    live, rejected = ledger.erp_totals(conn, table)
    message = f"4D {source}, erp {live}, open rejects {rejected}"
    gap = (source or 0) - live - rejected
    if source is not None and gap:
        message += f": {gap:+d} unaccounted (4D changes while we count; a full sync settles it)"
    return source, message


def reconcile_run(
    conn: psycopg.Connection[Any],
    run_id: str,
    tables: list[LegacyTable],
    client_factory: Callable[[], AbstractContextManager[FourDClient]],
) -> dict[str, str]:
    """Reconcile every merged table of a run; {table: problem} for the ones that lost records."""
    problems: dict[str, str] = {}
    checked = []
    for table in tables:
        found = conn.execute("select to_regclass(%s)", (f"erp.{table.snake_name}",)).fetchone()
        if found is None or found[0] is None:
            continue  # dbt never built it: the table already failed in transform
        missing, problem = check_losses(conn, run_id, table)
        if problem:
            problems[table.name] = problem
        checked.append((table, missing, problem))
    counts: dict[str, tuple[int | None, str]] = {}
    not_asked = None
    try:
        with client_factory() as client:
            for table, _, _ in checked:
                counts[table.name] = count_against_4d(client, conn, table)
    except Exception as exc:  # 4D down now: the loss check above stands on its own
        not_asked = f"not reconciled with 4D: it could not be asked ({type(exc).__name__}: {exc})"
        log.warning("%s", not_asked)
    for table, missing, problem in checked:
        source, message = counts.get(table.name, (None, not_asked or "not reconciled with 4D"))
        ledger.record_reconcile(
            conn,
            run_id,
            table.name,
            missing=missing,
            message=problem or message,
            reconciled=table.name in counts,
            source_count=source,
            failure=problem,
        )
        log.info("%s: %s", table.name, problem or message)
    return problems
