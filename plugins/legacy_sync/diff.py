"""Legacy-vs-ERP diff and the readiness score: "can we switch the legacy ERP off?".

Per table, the diff reads 4D again by key pages (the whole table), maps the records with **the
sync's own dbt models** and compares the result with ``erp`` by key and column:

- *identical*: the ERP row holds what the mapping makes of 4D's record;
- *different*: the ERP row differs, in the columns listed;
- *missing in ERP*: 4D has the record (and the mapping accepts it), the ERP has no live row;
- *extra in ERP*: a live ERP row 4D no longer has;
- *rejected*: the mapping rejects 4D's record (its reasons are kept); a *known reject* when the
  sync already lists it as an open reject.

Readiness of a table = records identical in the ERP / (4D's records - known rejects, i.e. records
the mapping rejects that the sync already lists as open rejects); overall
the same over every compared table. Below ``LEGACY_SYNC_READINESS_THRESHOLD`` (default 0.99) a
table or the whole diff warns (task log, ``diff_run.status``, the configured notifiers).

How "the same rules" are reused, and why this way: the records land in the sync's own landing
tables (``legacy_staging.<table>_raw``) under the diff's run id (``diff:<run>``), with a
``landing_batch`` row so the staging models pick them up; then ``dbt run`` builds only the
staging and intermediate models (``int_<table>__validated``: parsed, mapped, validated, FKs
resolved against the ERP) with ``--vars {run_id: <diff id>, transform_schema: legacy_diff,
erp_ddl: false}``: into a schema of its own, ``legacy_diff``, never the sync's working tables in
``legacy_transform``, and without the erp DDL hook. So the diff takes **no ERP lock** and never
blocks the hourly sync: the landing rows are keyed by run id, the working tables are its own, and
the ERP is only read. The comparison is SQL over ``legacy_diff.int_<table>__validated`` and
``erp.<table>`` (tolerances below). Afterwards its landed rows are dropped. Comparing at the level
of the staging models instead would need the mapping (status words, FK ids, ``is_active``,
customer types, categories) written a second time in Python or SQL, which is what must not drift.

Tolerances (documented, deliberate; everything else must be equal):

- numbers: equal when equal after rounding both to ``LEGACY_SYNC_DIFF_NUMERIC_SCALE`` decimals
  (default 4): a money scale of ``10.5`` vs ``10.5000`` never differs;
- text: CR/CRLF line ends count as LF, leading/trailing blanks and line breaks are ignored, and a
  blank text equals NULL (the mapping's own rules: text is trimmed, blank is NULL);
- ``products.category_id`` is compared as the category it points to (ids are the ERP's own).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import sql

from legacy_sync import cutover_ledger, dbt_build, erp_db, landing, ledger, notify
from legacy_sync.fourd import FourDClient
from legacy_sync.registry import TABLES, LegacyTable, get_table, select_tables

log = logging.getLogger(__name__)

ClientFactory = Callable[[], FourDClient]

DIFF_SCHEMA = "legacy_diff"
THRESHOLD_ENV = "LEGACY_SYNC_READINESS_THRESHOLD"
SCALE_ENV = "LEGACY_SYNC_DIFF_NUMERIC_SCALE"
KEEP_KEYS_ENV = "LEGACY_SYNC_DIFF_KEEP_KEYS"
DEFAULT_THRESHOLD = 0.99
DBT_TARGET = "legacy_erp_diff"


@dataclass(frozen=True)
class Lookup:
    """An ERP column holding an ERP id, compared as what it points to."""

    mapped: str
    """The column of ``int_<table>__validated`` holding the business value."""
    erp_table: str
    erp_column: str
    """The column of ``erp.<erp_table>`` equal to that value."""


LOOKUPS: dict[tuple[str, str], Lookup] = {
    ("Products", "category_id"): Lookup("category", "categories", "legacy_id"),
}


def threshold() -> float:
    value = os.environ.get(THRESHOLD_ENV, "").strip()
    return float(value) if value else DEFAULT_THRESHOLD


def numeric_scale() -> int:
    value = os.environ.get(SCALE_ENV, "").strip()
    return int(value) if value else 4


def keep_keys() -> int:
    value = os.environ.get(KEEP_KEYS_ENV, "").strip()
    return int(value) if value else 100_000


def diff_id_for(run_id: str) -> str:
    """The diff's run id in the landing tables: never the same as a sync run's."""
    return f"diff:{run_id}"


# -- the comparison, as SQL -------------------------------------------------------------------------


def _normalized(expression: sql.Composable, sql_type: str, scale: int) -> sql.Composable:
    kind = sql_type.split()[0].lower()
    if kind == "numeric":
        return sql.SQL("round(({})::numeric, {})").format(expression, sql.Literal(scale))
    if kind == "text":
        return sql.SQL(
            "nullif(btrim(replace(replace({}, E'\\r\\n', E'\\n'), E'\\r', E'\\n'), E' \\t\\n'), '')"
        ).format(expression)
    return expression


def compare_query(table: LegacyTable, diff_id: str, scale: int | None = None) -> sql.Composed:
    """One row per key of 4D's mapped records and the ERP's live rows: ``legacy_id``, ``status``,
    ``columns`` (the ERP columns that differ), ``reason`` (rejection reasons), ``in_fourd``,
    ``in_erp``, ``known_reject``."""
    scale = numeric_scale() if scale is None else scale
    mapped_cols: list[sql.Composable] = []
    erp_cols: list[sql.Composable] = []
    checks: list[sql.Composable] = []
    joins: list[sql.Composable] = []
    for column in table.erp_columns:
        lookup = LOOKUPS.get((table.name, column.name))
        alias = sql.Identifier(f"c__{column.name}")
        if lookup:
            lookup_alias = sql.Identifier(f"l__{column.name}")
            mapped_cols.append(sql.SQL("m.{} as {}").format(sql.Identifier(lookup.mapped), alias))
            erp_cols.append(
                sql.SQL("{}.{} as {}").format(lookup_alias, sql.Identifier(lookup.erp_column), alias)
            )
            joins.append(
                sql.SQL("left join {} as {} on {}.id = e.{}").format(
                    sql.Identifier("erp", lookup.erp_table),
                    lookup_alias,
                    lookup_alias,
                    sql.Identifier(column.name),
                )
            )
            sql_type = "text"
        else:
            mapped_cols.append(sql.SQL("m.{} as {}").format(sql.Identifier(column.name), alias))
            erp_cols.append(sql.SQL("e.{} as {}").format(sql.Identifier(column.name), alias))
            sql_type = column.sql_type
        checks.append(
            sql.SQL("case when {} is distinct from {} then {} end").format(
                _normalized(sql.SQL("m.{}").format(alias), sql_type, scale),
                _normalized(sql.SQL("e.{}").format(alias), sql_type, scale),
                sql.Literal(column.name),
            )
        )
    return sql.SQL(
        """
        select
            coalesce(m.legacy_id, e.legacy_id) as legacy_id,
            case
                when m.legacy_id is null then 'extra_in_erp'
                when m.is_rejected then 'rejected'
                when e.legacy_id is null then 'missing_in_erp'
                when cardinality(d.columns) > 0 then 'different'
                else 'identical'
            end as status,
            case when m.legacy_id is not null and not m.is_rejected and e.legacy_id is not null
                then d.columns else '{{}}'::text[] end as columns,
            m.rejection_reasons as reason,
            m.legacy_id is not null as in_fourd,
            e.legacy_id is not null as in_erp,
            exists (
                select 1 from legacy_sync.open_reject o
                where o.table_name = {table_name} and o.record_id = coalesce(m.legacy_id, e.legacy_id)
            ) as known_reject
        from (
            select m.legacy_id, m.is_rejected, m.rejection_reasons, {mapped_cols}
            from {validated} as m where m.run_id = {diff_id}
        ) as m
        full join (
            select e.legacy_id, {erp_cols}
            from {erp} as e {joins}
            where not e.is_deleted
        ) as e on e.legacy_id = m.legacy_id
        cross join lateral (select array_remove(array[{checks}]::text[], null) as columns) as d
        """
    ).format(
        table_name=sql.Literal(table.name),
        mapped_cols=sql.SQL(", ").join(mapped_cols),
        validated=sql.Identifier(DIFF_SCHEMA, f"int_{table.snake_name}__validated"),
        diff_id=sql.Literal(diff_id),
        erp_cols=sql.SQL(", ").join(erp_cols),
        erp=sql.Identifier("erp", table.snake_name),
        joins=sql.SQL(" ").join(joins),
        checks=sql.SQL(", ").join(checks),
    )


# -- the steps ------------------------------------------------------------------------------------


@dataclass
class DiffOutcome:
    """What one diff found: per table and overall, and what warns."""

    diff_id: str
    tables: list[dict[str, Any]]
    readiness: float | None
    threshold: float
    warnings: list[str] = dataclasses.field(default_factory=list)
    failures: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.failures and not [t for t in self.tables if t.get("error_message") is None]:
            return "FAILED"
        return "BELOW_THRESHOLD" if self.warnings else "READY"

    def text(self) -> str:
        lines = [
            f"Legacy-vs-ERP diff {self.diff_id}: readiness {percent(self.readiness)}"
            f" (threshold {percent(self.threshold)})"
        ]
        for row in self.tables:
            if row.get("error_message"):
                lines.append(f"- {row['table_name']}: not compared: {row['error_message']}")
                continue
            columns = ", ".join(f"{c} ({n})" for c, n in (row.get("differing_columns") or {}).items())
            lines.append(
                f"- {row['table_name']}: {percent(row['readiness'])} identical of {row['fourd_records']:,};"
                f" different {row['different']:,}{f' [{columns}]' if columns else ''},"
                f" missing in ERP {row['missing_in_erp']:,}, extra in ERP {row['extra_in_erp']:,},"
                f" rejected {row['rejected']:,} ({row['known_rejects']:,} known)"
            )
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def percent(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.2f} %"


def begin(conninfo: str, diff_id: str, tables: list[str] | None, dag_id: str | None = None) -> list[str]:
    """Record the diff run; returns the tables to compare."""
    selected = [t.name for t in select_tables(tables)]
    with erp_db.connect(conninfo, autocommit=True) as conn:
        ledger.apply_schema(conn)
        cutover_ledger.begin_diff(conn, diff_id, dag_id, selected, threshold())
    return selected


def land(conninfo: str, diff_id: str, name: str, client_factory: ClientFactory) -> int:
    """Read the whole table from 4D by key pages and land it under ``diff_id`` (one transaction);
    a failure is recorded for the table before it is raised."""
    table = get_table(name)
    started = time.monotonic()
    with erp_db.connect(conninfo, autocommit=True) as conn:
        try:
            with client_factory() as client, conn.transaction():
                ledger.forget_landing(conn, diff_id, [table])
                attributes, _ = landing.check_catalog(client, table)
                wanted = landing.wanted_attributes(table, attributes)
                raw = sql.Identifier("legacy_staging", table.raw_table)
                landed, count = 0, None
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        sql.SQL("copy {} (run_id, legacy_id, payload, row_hash) from stdin").format(raw)
                    ) as copy,
                ):
                    for page in client.iter_by_key(table.name, table.key, attributes=wanted):
                        count = page.count if count is None else count
                        copy.write(landing.copy_block(page.entities, table.key, diff_id))
                        landed += len(page.entities)
                batch = ledger.Batch(
                    table=table.name,
                    mode="diff",
                    strategy="by_key",
                    records_landed=landed,
                    source_count=count,
                )
                batch.seconds = round(time.monotonic() - started, 3)
                ledger.record_batch(conn, diff_id, batch)
        except Exception as exc:
            cutover_ledger.fail_diff_table(conn, diff_id, table.name, f"could not read it from 4D: {exc}")
            raise
    log.info("%s: read %d records from 4D for the diff in %.1fs", name, landed, time.monotonic() - started)
    return landed


def map_and_compare(conninfo: str, diff_id: str, tables: list[str]) -> dict[str, dict[str, Any]]:
    """Map what landed with the sync's dbt models (into ``legacy_diff``), then compare with erp."""
    with erp_db.connect(conninfo, autocommit=True) as conn:
        landed = [t for t in tables if not cutover_ledger.diff_table_failed(conn, diff_id, t)]
    if not landed:
        return {}
    failed = run_dbt_models(diff_id, landed, erp_db.dbt_env(conninfo))
    compared: dict[str, dict[str, Any]] = {}
    with erp_db.connect(conninfo, autocommit=True) as conn:
        for name in landed:
            if name in failed:
                cutover_ledger.fail_diff_table(conn, diff_id, name, failed[name])
                continue
            table = get_table(name)
            compared[name] = cutover_ledger.record_diff_table(
                conn, diff_id, name, compare_query(table, diff_id), keep_keys()
            )
            log.info(
                "%s: %s identical; %d different, %d missing in ERP, %d extra in ERP, %d rejected",
                name,
                percent(compared[name]["readiness"]),
                compared[name]["different"],
                compared[name]["missing_in_erp"],
                compared[name]["extra_in_erp"],
                compared[name]["rejected"],
            )
    return compared


def finish(conninfo: str, diff_id: str) -> DiffOutcome:
    """Readiness per table and overall, what warns, the run closed; the landed rows dropped."""
    limit = threshold()
    with erp_db.connect(conninfo, autocommit=True) as conn:
        rows = cutover_ledger.diff_tables(conn, diff_id)
        outcome = outcome_of(diff_id, rows, limit)
        cutover_ledger.finish_diff(conn, diff_id, outcome.status, outcome.readiness, outcome.text())
        ledger.forget_landing(conn, diff_id, TABLES)
    for warning in outcome.warnings:
        log.warning("%s", warning)
    log.info("%s", outcome.text())
    return outcome


def outcome_of(diff_id: str, rows: list[dict[str, Any]], limit: float) -> DiffOutcome:
    """Readiness and warnings from the per-table summaries (pure)."""
    compared = [r for r in rows if r.get("error_message") is None]
    counted = sum(int(r["identical"]) for r in compared)
    base = sum(int(r["fourd_records"]) - int(r["known_rejects"]) for r in compared)
    readiness = counted / base if base > 0 else None
    warnings = []
    for r in compared:
        if r["readiness"] is not None and float(r["readiness"]) < limit:
            warnings.append(
                f"{r['table_name']}: only {percent(r['readiness'])} of its 4D records are identical in "
                f"the ERP (threshold {percent(limit)})"
            )
    if readiness is not None and readiness < limit:
        warnings.append(f"overall readiness {percent(readiness)} is below the threshold {percent(limit)}")
    failures = {r["table_name"]: str(r["error_message"]) for r in rows if r.get("error_message")}
    warnings += [f"{t}: not compared: {m}" for t, m in failures.items()]
    return DiffOutcome(diff_id, rows, readiness, limit, warnings, failures)


def notify_readiness(outcome: DiffOutcome, context: Mapping[str, Any] | None = None) -> list[str]:
    """Send the readiness warning through the configured notifiers (only when something warns)."""
    if not outcome.warnings:
        return []
    message = notify.Message(
        kind="readiness",
        subject=f"[legacy sync] readiness {percent(outcome.readiness)} is below {percent(outcome.threshold)}",
        sections=[
            notify.Section("Warnings", list(outcome.warnings)),
            notify.Section("Readiness per table", outcome.text().splitlines()[1:]),
        ],
        link=notify.monitor_url("/cutover"),
        data={"diff_id": outcome.diff_id, "readiness": outcome.readiness, "threshold": outcome.threshold},
    )
    return notify.send(message, context)


def run_diff(
    conninfo: str,
    diff_id: str,
    client_factory: ClientFactory,
    tables: list[str] | None = None,
    dag_id: str | None = None,
) -> DiffOutcome:
    """The whole diff in this process (the CLI, the suites): what the DAG does, in order."""
    selected = begin(conninfo, diff_id, tables, dag_id)
    for name in selected:
        try:
            land(conninfo, diff_id, name, client_factory)
        except Exception:
            log.exception("the diff could not read %s from 4D", name)
    map_and_compare(conninfo, diff_id, selected)
    outcome = finish(conninfo, diff_id)
    notify_readiness(outcome)
    return outcome


# -- dbt ------------------------------------------------------------------------------------------


def run_dbt_models(diff_id: str, tables: list[str], env: dict[str, str]) -> dict[str, str]:
    """``dbt run`` of the staging and intermediate models of ``tables`` for the diff's run id, into
    ``legacy_diff``; {table: reason} for the tables whose models failed."""
    project = dbt_build.dbt_project_dir()
    target_path = project / "target" / DBT_TARGET
    variables = orjson.dumps({"run_id": diff_id, "transform_schema": DIFF_SCHEMA, "erp_ddl": False}).decode()
    args = [
        "run",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target_path),
        "--select",
        *dbt_build.build_selection(tables),
        # Only the mapping: never the merges into erp, never the sync's reports.
        "--exclude",
        "path:models/erp",
        "path:models/sync",
        "--vars",
        variables,
    ]
    log.info("mapping the diff's records with dbt (%s)", ", ".join(tables))
    outcome = dbt_build.invoke_dbt(args, env, target_path / "run_results.json")
    run_results, manifest = outcome.run_results, outcome.manifest
    if run_results is None:
        detail = " / ".join(outcome.lines[-5:]) or repr(outcome.exception)
        return dict.fromkeys(tables, f"dbt did not run: {detail}")
    failed: dict[str, str] = {}
    for result in run_results.get("results", []):
        status = str(result.get("status"))
        if status == "success":
            continue
        concerned = [t for t in dbt_build.node_tables(result["unique_id"], manifest) if t in tables] or tables
        message = (result.get("message") or status).strip().splitlines()[0][:300]
        for table in concerned:
            failed.setdefault(
                table, f"its mapping did not run ({result['unique_id'].split('.')[-1]}: {message})"
            )
    if not outcome.success and not failed:
        detail = " / ".join(outcome.lines[-3:]) or repr(outcome.exception)
        failed = dict.fromkeys(tables, f"dbt run failed: {detail}")
    return failed


# -- export -----------------------------------------------------------------------------------------


def keys_csv_rows(rows: list[tuple[str, str, str, list[str], str]]) -> Iterator[list[str]]:
    """CSV rows (with a header) of a diff's keys that are not identical."""
    yield ["table", "legacy_id", "status", "columns", "reason"]
    for table, legacy_id, status, columns, reason in rows:
        yield [table, legacy_id, status, " ".join(columns), reason]
