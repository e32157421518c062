"""Builds the sync DAGs from the table registry. DAG files only call :func:`build_sync_dag`.

Shape of a run::

    prepare -> extract_and_land[table] (mapped, pool legacy_4d) -> transform (dbt build)
            -> reconcile (4D vs erp + rejects) -> summarize (always runs; writes sync_log/sync_error,
            moves watermarks)

The task bodies live in ``legacy_sync.pipeline``; this module only wires them.

Per-table isolation: each table is its own mapped task; ``transform`` and ``summarize`` run
whatever happened upstream, so one broken table is FAILED with its reason while the others
load and advance. ``summarize`` then fails the run so alerting sees it.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.sdk import (
    DAG,
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
    Param,
    TriggerRule,
    get_current_context,
    task,
)
from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy

from legacy_sync.registry import TABLE_NAMES

LEGACY_4D_CONN_ID = "legacy_4d_default"
POOL = "legacy_4d"

DOC_MD = """
### {title}

Moves the legacy 4D ERP's tables ({tables}) into the ERP database: extract over 4D REST into
`legacy_staging`, map/validate/test with dbt into `erp`, summarise in `legacy_sync.sync_log`.

**On call — triage**
1. `summarize` failed: some table is `FAILED`. Read `legacy_sync.sync_log.error_message` for this
   `run_id` (or the *Legacy sync* page in this UI). Other tables did load.
2. `extract_and_land[...]` failed with *HTTP 402*: the 4D server has no client licence free. Licences
   free up after 60+ minutes idle; do not raise the `legacy_4d` pool. Clear the task later.
3. Failed with *4D error 1500/1800*: a field or table was renamed or un-exposed in 4D. Fix the 4D
   structure or `legacy_sync/registry.py`.
4. `transform` failed: dbt's per-model log lines are in that task's log; fix, then clear `transform`.
5. Records rejected (`PARTIALLY_COMPLETED`): reasons in `sync_error`; after a mapping fix, trigger with
   `replay_errors`.

Watermarks move only in `summarize`, after the data is merged: re-running is always safe.
"""


class FourDRetryPolicy(RetryPolicy):
    """Task-level retries by failure kind (the client already retried transient faults).

    A request 4D will never accept (unknown field, bad query, bad credentials) fails at once;
    no licence left waits ten minutes, since licences free up only after sessions idle out.
    """

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        from legacy_sync.fourd import FourDError, LicenceExhaustedError

        if isinstance(exception, LicenceExhaustedError):
            return RetryDecision.retry(dt.timedelta(minutes=10), "4D has no client licence free")
        if isinstance(exception, FourDError) and not exception.retryable:
            return RetryDecision.fail(f"4D refused the request: {exception}")
        return RetryDecision.default()


def _params(full: bool) -> dict[str, Param]:
    params = {
        "tables": Param(
            list(TABLE_NAMES),
            type="array",
            items={"type": "string", "enum": list(TABLE_NAMES)},
            title="Tables",
            description="Legacy 4D tables to sync (default: all).",
        ),
    }
    if not full:
        params["full_refresh"] = Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Re-read every record and detect deletions, instead of only what changed.",
        )
        params["replay_errors"] = Param(
            False,
            type="boolean",
            title="Replay rejected records",
            description=(
                "After a mapping fix: map again the records rejected earlier, from their stored raw data, "
                "without reading 4D. Watermarks do not move."
            ),
        )
    return params


def _deadline(dag_id: str, limit_minutes: int) -> DeadlineAlert | None:
    """Alert when a run is still going ``limit_minutes`` after it was queued; 0 turns it off.

    Off for ``airflow dags test`` (the demo, ``legacy-sync sync``): Airflow 3.3 fails to store
    a deadline for a run started that way ("'dict' object has no attribute 'hex'").
    """
    if limit_minutes <= 0:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=limit_minutes),
        callback=AsyncCallback(
            "legacy_sync.alerts.sync_overdue", kwargs={"dag_id": dag_id, "limit_minutes": limit_minutes}
        ),
    )


def build_sync_dag(dag_id: str, *, full: bool, schedule: str, description: str) -> DAG:
    """One sync DAG. ``full`` DAGs always read everything and detect hard deletes."""
    configured = os.environ.get("LEGACY_SYNC_DEADLINE_MINUTES", "")
    limit = int(configured) if configured.strip() else (720 if full else 120)
    with DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=1,
        params=_params(full),
        tags=["legacy-4d", "erp", "sync"],
        doc_md=DOC_MD.format(title=description, tables=", ".join(TABLE_NAMES)),
        default_args={"owner": "erp-migration", "retries": 0},
        deadline=_deadline(dag_id, limit),
    ) as dag:

        def conninfo() -> str:
            from legacy_sync import erp_db

            return erp_db.conninfo_from_airflow()

        def fourd_client() -> Any:
            from legacy_sync.hook import Legacy4DHook
            from legacy_sync.session_store import PostgresSessionStore

            store = PostgresSessionStore(conninfo(), LEGACY_4D_CONN_ID)
            return Legacy4DHook(LEGACY_4D_CONN_ID, session_store=store).get_conn()

        @task
        def prepare() -> list[dict[str, str]]:
            """Apply our schema, resolve the tables to sync, mark them RUNNING in sync_log."""
            from legacy_sync import pipeline

            context = get_current_context()
            params = context["params"]
            mode = pipeline.choose_mode(
                full, params.get("full_refresh", False), params.get("replay_errors", False)
            )
            return pipeline.prepare(conninfo(), context["run_id"], mode, params.get("tables"))

        @task(
            pool=POOL,
            retries=3,
            retry_delay=dt.timedelta(seconds=30),
            retry_exponential_backoff=2.0,
            max_retry_delay=dt.timedelta(minutes=15),
            retry_policy=FourDRetryPolicy(),
            map_index_template="{{ task.op_kwargs['item']['table'] }}",
        )
        def extract_and_land(item: dict[str, str]) -> dict[str, Any]:
            """Page one table out of 4D and COPY it into legacy_staging (one transaction)."""
            from legacy_sync import pipeline

            return pipeline.extract_table(conninfo(), get_current_context()["run_id"], item, fourd_client)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def transform() -> dict[str, str]:
            """dbt build over what landed; returns {table: reason} for tables dbt failed."""
            from legacy_sync import pipeline

            return pipeline.transform(conninfo(), get_current_context()["run_id"], target_name=dag_id)

        @task(pool=POOL, retries=2, retry_delay=dt.timedelta(minutes=1))
        def reconcile() -> dict[str, str]:
            """4D's records vs erp + rejects, per merged table; losses fail the table."""
            from legacy_sync import pipeline

            return pipeline.reconcile(conninfo(), get_current_context()["run_id"], fourd_client)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def summarize(items: list[dict[str, str]]) -> list[dict[str, Any]]:
            """Always runs: final sync_log/sync_error per table, watermarks of merged tables."""
            from airflow.sdk.exceptions import AirflowFailException

            from legacy_sync import pipeline

            context = get_current_context()
            # transform pushes a dict when it finished (even with failed tables), nothing when it crashed.
            transform_finished = context["ti"].xcom_pull(task_ids="transform") is not None
            summary = pipeline.summarize(conninfo(), context["run_id"], items, transform_finished)
            failed = [row for row in summary if row.status == "FAILED"]
            if failed:
                raise AirflowFailException(
                    f"{len(failed)} table(s) failed: "
                    + "; ".join(f"{r.table}: {r.error_message}" for r in failed)
                )
            return [row.__dict__ for row in summary]

        tables = prepare()
        landed = extract_and_land.expand(item=tables)
        merged = transform()
        checked = reconcile()
        landed >> merged >> checked >> summarize(tables)

    return dag


def schedule_from_env(variable: str, default: str) -> str:
    """Deployment knob: a cron expression (or preset) from the environment."""
    return os.environ.get(variable) or default
