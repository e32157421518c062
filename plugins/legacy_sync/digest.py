"""One digest per sync run, through the configured Airflow notifiers (``notify.py``).

Sections, in this order (a section with nothing to say says "none"):

- **Tables**: per table its status and created / updated / deleted / rejected / warned, and why it
  failed;
- **Top reject reasons**: this run's most frequent rejection reasons (values such as keys and
  amounts folded, so one rule counts once);
- **Schema drift**: the structure changes this run reported, and frozen tables waiting for a person;
- **Held deletions**: deletions the circuit breaker holds for approval;
- **Stale tables**: tables whose last successful sync is older than their limit (``freshness.py``);
- **Readiness**: the last legacy-vs-ERP diff's score, and the tables below the threshold;

plus a link to the sync monitor filtered to the run.

An identical repeat is suppressed: the digest's *fingerprint* covers what is wrong (tables not
COMPLETED with their messages, the reasons of the records still rejected, new drift, frozen
tables, held deletions, stale tables, a readiness warning), not the counts. A run whose
fingerprint equals the last digest sent for the same DAG is recorded in
``legacy_sync.digest_log`` as suppressed and sends nothing; so a quiet hourly sync sends one
"all well" digest, then nothing until something changes. A digest is decided once per run (a
retried task sends nothing more).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from legacy_sync import cutover_ledger, diff, erp_db, freshness, ledger, notify

log = logging.getLogger(__name__)

TOP_REASONS = 5
SECTIONS = ("Tables", "Top reject reasons", "Schema drift", "Held deletions", "Stale tables", "Readiness")


def _folded_reasons(alias: str) -> str:
    """One row per reason of ``<alias>.error_message`` (reasons are joined by "; "), as a
    ``pattern`` with quoted values and numbers folded, so "ListPrice -3" and "ListPrice -7" count
    as one reason."""
    return f"""
cross join lateral unnest(string_to_array({alias}.error_message, '; ')) as reason (text)
cross join lateral (
    select regexp_replace(
        regexp_replace(reason.text, '''[^'']*''', '''…''', 'g'),
        '(?<![+])-?\\m[0-9]+(\\.[0-9]+)?\\M', 'N', 'g'
    ) as pattern
) as folded
"""


_REASON_PATTERNS = f"""
select l.table_name, pattern, count(*) as records
from legacy_sync.sync_error as e
inner join legacy_sync.sync_log as l on l.id = e.sync_log_id
{_folded_reasons("e")}
where l.run_id = %s
group by l.table_name, pattern
order by records desc, l.table_name, pattern
limit %s
"""


_OPEN_PATTERNS = f"""
select distinct o.table_name, pattern
from legacy_sync.open_reject as o
{_folded_reasons("o")}
where o.table_name = any(%s)
"""
"""The standing reasons (open rejects) of the run's tables: what the fingerprint compares, so a
run that rejects nothing new while the same records stay rejected repeats the last digest."""


def build(conn: Any, run_id: str, dag_id: str | None, now: dt.datetime | None = None) -> notify.Message:
    """The digest of one run, from the ledger (pure reads)."""
    summary = ledger.run_summary(conn, run_id)
    table_lines = []
    for row in summary:
        line = (
            f"{row.table}: {row.status}; created {row.created:,}, updated {row.updated:,}, "
            f"deleted {row.deleted:,}, rejected {row.failed:,}, warned {row.warned:,}"
        )
        if row.open_rejects:
            line += f" (+{row.open_rejects:,} open rejects from earlier runs)"
        if row.error_message:
            line += f" - {row.error_message}"
        table_lines.append(line)
    reasons = conn.execute(_REASON_PATTERNS, (run_id, TOP_REASONS)).fetchall()
    reason_lines = [f"{n:,} records of {table}: {pattern}" for table, pattern, n in reasons]
    drift_rows = cutover_ledger.drift_reports(conn, run_id)
    drift_lines = [
        f"[{r['severity']}] {r['table_name']}: {r['message']} (policy {r['policy']}, {r['status'].lower()})"
        for r in reversed(drift_rows)
    ]
    pending = cutover_ledger.pending_tables(conn)
    drift_lines += [
        f"{t} is frozen, waiting for a person to accept its new structure" for t in sorted(pending)
    ]
    held = ledger.held_deletes(conn)
    held_lines = [f"{t}: {n:,} row(s): {reason}" for t, (n, reason) in held.items()]
    stale = [a for a in freshness.table_ages(conn, now) if a.stale]
    stale_lines = [a.describe() for a in stale]
    latest = cutover_ledger.latest_diff(conn)
    readiness_lines: list[str] = []
    readiness_warns = None
    if latest is None:
        readiness_lines.append(
            "no legacy-vs-ERP diff yet (run the legacy_erp_diff DAG or `legacy-sync diff`)"
        )
    else:
        readiness_lines.append(
            f"{diff.percent(latest['readiness'])} of 4D's records identical in the ERP (threshold "
            f"{diff.percent(latest['threshold'])}), diff {latest['diff_id']} of "
            f"{latest['finished_at'].astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        )
        limit = float(latest["threshold"])
        for row in latest["tables_detail"]:
            if row["readiness"] is not None and float(row["readiness"]) < limit:
                readiness_lines.append(f"{row['table_name']}: {diff.percent(row['readiness'])}")
        if latest["status"] == "BELOW_THRESHOLD":
            readiness_warns = latest["diff_id"]
    failed = [r for r in summary if r.status == "FAILED"]
    partial = [r for r in summary if r.status == "PARTIALLY_COMPLETED"]
    verdict = (
        f"{len(failed)} failed"
        if failed
        else f"{len(partial)} partially completed"
        if partial
        else "all completed"
    )
    fingerprint_of = {
        "tables": sorted(
            (r.table, r.status, r.error_message or "") for r in summary if r.status != "COMPLETED"
        ),
        "reasons": sorted(tuple(r) for r in conn.execute(_OPEN_PATTERNS, ([r.table for r in summary],))),
        "drift": sorted(int(r["id"]) for r in drift_rows),
        "frozen": sorted(pending),
        "held": sorted(held),
        "stale": sorted(a.table for a in stale),
        "readiness": readiness_warns,
    }
    fingerprint = hashlib.sha256(json.dumps(fingerprint_of, sort_keys=True).encode()).hexdigest()
    return notify.Message(
        kind="digest",
        subject=f"[legacy sync] {dag_id or 'sync'} run {run_id}: {verdict}",
        sections=[
            notify.Section("Tables", table_lines),
            notify.Section("Top reject reasons", reason_lines),
            notify.Section("Schema drift", drift_lines),
            notify.Section("Held deletions", held_lines),
            notify.Section("Stale tables", stale_lines),
            notify.Section("Readiness", readiness_lines),
        ],
        link=notify.monitor_url("/?" + urlencode({"run_id": run_id})),
        data={
            "run_id": run_id,
            "dag_id": dag_id,
            "fingerprint": fingerprint,
            "tables": [row.__dict__ for row in summary],
        },
    )


def send(
    conninfo: str, run_id: str, dag_id: str | None, context: Mapping[str, Any] | None = None
) -> notify.Message | None:
    """Send the run's digest unless it was decided already or repeats the last one sent; returns
    the message sent (None when nothing went out)."""
    with erp_db.connect(conninfo, autocommit=True) as conn:
        if cutover_ledger.digest_done(conn, run_id):
            log.info("the digest of run %s was already decided", run_id)
            return None
        message = build(conn, run_id, dag_id)
        fingerprint = str(message.data["fingerprint"])
        if fingerprint == cutover_ledger.last_sent_fingerprint(conn, dag_id):
            log.info("digest of run %s suppressed: the same as the last one sent\n%s", run_id, message.text)
            cutover_ledger.record_digest(
                conn, run_id, dag_id, fingerprint, False, [], message.subject, message.text
            )
            return None
        channels = notify.send(message, context)
        cutover_ledger.record_digest(
            conn, run_id, dag_id, fingerprint, True, channels, message.subject, message.text
        )
    return message
