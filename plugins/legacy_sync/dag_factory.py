"""Builds the sync DAGs from the table registry. DAG files only call the builders here.

Shape of a sync run::

    prepare -> extract_and_land[table] (mapped, pool legacy_4d) -> transform (dbt build)
            -> reconcile (losses from the database, then 4D's counts) -> summarize (always runs;
            sync_log, watermarks) -> send_digest (one digest per run; fails the run when a
                                     table FAILED, as a run's state comes from its last tasks)
                                  -> drift_waits -> request_drift_approval (a frozen table's approval)
                       -> deletions_held -> request_approval (only when deletions were held)
                       -> announce_changes (always runs; an Asset event per changed erp table)

The task bodies live in ``legacy_sync.pipeline``; this module only wires them.

Per-table isolation: each table is its own mapped task, and dbt's verdicts are per table;
``transform`` and ``summarize`` run whatever happened upstream, so one broken table is FAILED
with its reason while the others load and advance. ``summarize`` then fails the run so alerting
sees it. Transform, reconcile and summarize take turns with other runs on the ERP lock.

When the mass-change circuit breaker holds deletions, ``legacy_erp_held_deletes`` asks a person
(Airflow's human-in-the-loop approval) and applies or discards them.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import (  # type: ignore[attr-defined]  # Deadline Alerts: lazily exported
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

from legacy_sync.contracts import DRIFT_DAG_ID, FOURD_CONN_ID, HELD_DELETES_DAG_ID, POOL
from legacy_sync.cutover_dags import add_sync_tasks
from legacy_sync.erp_assets import CHANGES_ALIAS
from legacy_sync.registry import TABLE_NAMES

DOC_MD = """
### {title}

Moves the legacy 4D ERP's tables ({tables}) into the ERP database: extract over 4D REST into
`legacy_staging`, map/validate/test with dbt into `erp`, summarise in `legacy_sync.sync_log`.

**On call — triage**
1. `summarize` failed: some table is `FAILED`. Read `legacy_sync.sync_log.error_message` for this
   `run_id` (or the *Legacy sync* page in this UI): one line per table, in words. Other tables did load.
2. `extract_and_land[...]` failed with *HTTP 402*: the 4D server has no client licence free. Licences
   free up after 60+ minutes idle; do not raise the `legacy_4d` pool. Clear the task later.
3. Failed with *4D error 1500/1800*: a field or table was renamed or un-exposed in 4D. Fix the 4D
   structure or `legacy_sync/registry.py`. A table 4D refused for one run catches up by itself.
4. `transform` failed: dbt's per-model log lines are in that task's log; fix, then clear `transform`.
5. Records rejected (`PARTIALLY_COMPLETED`): reasons in `sync_error`. Records waiting for a parent are
   read again every run by themselves; after a mapping fix, trigger with `replay_errors`; to re-read a
   few records, trigger with `tables` = one table and `keys`.
6. Deletions held (`records_deletes_held`): a run would have deleted more than the allowed share of a
   table. Approve or discard them in the `{held_dag}` run waiting for you, or trigger this DAG with
   `apply_held_deletes`.

7. A table FAILED with *is frozen*: 4D's structure of a `freeze`-policy table changed in a breaking way.
   Accept it in the `{drift_dag}` run waiting for you (or `legacy-sync drift --accept T`).
   `send_digest` fails when a table failed: it is the run's last word; its digest says why.

Watermarks move only in `summarize`, after the data is merged: re-running is always safe.
"""


class FourDRetryPolicy(RetryPolicy):
    """Task-level retries by failure kind (the client already retried transient faults).

    A request 4D will never accept (unknown field, bad query, bad credentials, a server that
    ignores the sort order) fails at once; no licence left waits ten minutes, since licences
    free up only after sessions idle out.
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
                "After a mapping fix: map again the records still rejected, from their stored raw data, "
                "without reading 4D. Watermarks do not move."
            ),
        )
        params["keys"] = Param(
            [],
            type="array",
            items={"type": "string"},
            title="Repair: record keys",
            description=(
                "Re-read exactly these records of the one table chosen in Tables and merge them "
                "(a targeted repair). Watermarks do not move."
            ),
        )
        params["apply_held_deletes"] = Param(
            False,
            type="boolean",
            title="Apply held deletions",
            description=(
                "Apply the deletions the mass-change circuit breaker held (of the chosen tables) "
                "before syncing, as an approval would."
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


def conninfo() -> str:
    from legacy_sync import erp_db

    return erp_db.conninfo_from_airflow()


def fourd_client() -> Any:
    from legacy_sync.hook import shared_session_client

    return shared_session_client(FOURD_CONN_ID)


def _still_running(dag_id: str | None, run_id: str) -> bool:
    """Asks Airflow (through the task's API client) whether another sync run is still going."""
    if not dag_id:
        return False
    try:
        state = get_current_context()["ti"].get_dagrun_state(dag_id=dag_id, run_id=run_id)
    except Exception as exc:
        # A run Airflow no longer knows has ended; when Airflow cannot answer, keep the run open
        # (closing a live run would be worse than leaving a dead one for the next run to close).
        return "not_found" not in str(exc) and "404" not in str(exc)
    return str(getattr(state, "value", state)).lower() in {"queued", "running"}


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
        doc_md=DOC_MD.format(
            title=description,
            tables=", ".join(TABLE_NAMES),
            held_dag=HELD_DELETES_DAG_ID,
            drift_dag=DRIFT_DAG_ID,
        ),
        default_args={"owner": "erp-migration", "retries": 0},
        deadline=_deadline(dag_id, limit),
    ) as dag:

        @task
        def prepare() -> list[dict[str, Any]]:
            """Apply our schema, close interrupted runs, mark this run's tables RUNNING."""
            from legacy_sync import pipeline

            context = get_current_context()
            params = context["params"]
            keys = [str(k) for k in params.get("keys") or []]
            mode = pipeline.choose_mode(
                full, params.get("full_refresh", False), params.get("replay_errors", False), keys
            )
            if params.get("apply_held_deletes"):
                pipeline.decide_held_deletes(
                    conninfo(),
                    context["run_id"],
                    params.get("tables"),
                    approve=True,
                    decided_by=f"trigger param of {context['run_id']}",
                )
            return pipeline.prepare(
                conninfo(),
                context["run_id"],
                mode,
                params.get("tables"),
                dag_id=dag_id,
                keys=keys or None,
                is_running=_still_running,
                client_factory=fourd_client,
            )

        @task(
            pool=POOL,
            retries=3,
            retry_delay=dt.timedelta(seconds=30),
            retry_exponential_backoff=2.0,
            max_retry_delay=dt.timedelta(minutes=15),
            retry_policy=FourDRetryPolicy(),
            map_index_template="{{ task.op_kwargs['item']['table'] }}",
        )
        def extract_and_land(item: dict[str, Any]) -> dict[str, Any]:
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
            """Losses from the database, then 4D's counts, per merged table."""
            from legacy_sync import pipeline

            return pipeline.reconcile(conninfo(), get_current_context()["run_id"], fourd_client)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def summarize(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            """Always runs: final sync_log per table, watermarks of merged tables."""
            from airflow.sdk.exceptions import AirflowFailException

            from legacy_sync import ledger, pipeline

            context = get_current_context()
            # transform pushes a dict when it finished (even with failed tables), nothing when it crashed.
            transform_finished = context["ti"].xcom_pull(task_ids="transform") is not None
            summary = pipeline.summarize(conninfo(), context["run_id"], items, transform_finished)
            failed = [row for row in summary if row.status == ledger.Status.FAILED]
            if failed:
                raise AirflowFailException(
                    f"{len(failed)} table(s) failed: "
                    + "; ".join(f"{r.table}: {r.error_message}" for r in failed)
                )
            return [row.__dict__ for row in summary]

        @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[CHANGES_ALIAS])
        def announce_changes() -> dict[str, dict[str, Any]]:
            """Always runs (a failed table must not hide the others' changes): an Asset event
            ``erp.<table>`` for each ERP table whose content this run changed, with its counts."""
            from legacy_sync import erp_assets

            context = get_current_context()
            return erp_assets.announce(conninfo(), context["run_id"], dag_id, context["outlet_events"])

        @task.short_circuit(trigger_rule=TriggerRule.ALL_DONE, ignore_downstream_trigger_rules=False)
        def deletions_held() -> str | None:
            """What waits for a person, when this run held deletions (else nothing downstream runs)."""
            from legacy_sync import erp_db, ledger

            with erp_db.connect(conninfo(), autocommit=True) as conn:
                held = ledger.held_deletes(conn, run_id=get_current_context()["run_id"])
            return "\n".join(f"- **{t}**: {n:,} row(s): {reason}" for t, (n, reason) in held.items()) or None

        request_approval = TriggerDagRunOperator(
            task_id="request_approval",
            trigger_dag_id=HELD_DELETES_DAG_ID,
            conf={"summary": "{{ ti.xcom_pull(task_ids='deletions_held') }}", "run_id": "{{ run_id }}"},
        )

        tables = prepare()
        landed = extract_and_land.expand(item=tables)
        merged = transform()
        checked = reconcile()
        summary = summarize(tables)  # type: ignore[arg-type]  # an XComArg, resolved at run time
        landed >> merged >> checked >> summary
        # Beside the summary: what they read was written by transform (the counts, the held
        # deletions), and a person hears of held deletions even when a table failed.
        checked >> deletions_held() >> request_approval
        checked >> announce_changes()
        add_sync_tasks(dag_id, summary)  # the run's digest, approval of a frozen table's new structure

    return dag


def build_held_deletes_dag() -> DAG:
    """A person approves or discards the deletions the circuit breaker held (triggered by the
    sync DAGs; also on demand)."""
    # Imported here, by the one DAG that declares it: the sync DAG files need not pay for it.
    from airflow.providers.standard.operators.hitl import HITLBranchOperator

    apply_label, keep_label = "Apply the deletions", "Keep the rows (discard the deletions)"
    with DAG(
        dag_id=HELD_DELETES_DAG_ID,
        description="Legacy 4D ERP -> ERP: approve or discard deletions held by the circuit breaker",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=1,
        tags=["legacy-4d", "erp", "sync"],
        doc_md=(
            "A sync run would have deleted more than the allowed share of a table's rows (or 4D's count "
            "of a table dropped sharply). Those deletions are held: the rows stay live in `erp` until you "
            "decide. Check in 4D that the records are really gone (not a table emptied by mistake, not a "
            "privilege change), then apply or discard. Held rows are listed in the *Legacy sync* page."
        ),
        default_args={"owner": "erp-migration", "retries": 0},
    ) as dag:
        decide = HITLBranchOperator(
            task_id="decide",
            subject="Legacy sync: deletions held for approval",
            body=(
                "The sync held these deletions (run `{{ dag_run.conf.get('run_id', 'on demand') }}`):\n\n"
                "{{ dag_run.conf.get('summary') or 'see the Legacy sync page' }}\n\n"
                "**Apply** soft-deletes the rows in `erp` (a row written since the hold stays). "
                "**Keep** leaves them live; a later run asks again if 4D still lacks them."
            ),
            options=[apply_label, keep_label],
            options_mapping={apply_label: "apply", keep_label: "discard"},
        )

        @task(outlets=[CHANGES_ALIAS])
        def apply() -> dict[str, int]:
            from legacy_sync import erp_assets, pipeline

            context = get_current_context()
            applied = pipeline.decide_held_deletes(
                conninfo(), context["run_id"], None, approve=True, decided_by="human-in-the-loop approval"
            )
            erp_assets.announce_deletions(
                applied, context["run_id"], HELD_DELETES_DAG_ID, context["outlet_events"]
            )
            return applied

        @task
        def discard() -> dict[str, int]:
            from legacy_sync import pipeline

            context = get_current_context()
            return pipeline.decide_held_deletes(
                conninfo(), context["run_id"], None, approve=False, decided_by="human-in-the-loop approval"
            )

        decide >> [apply(), discard()]
    return dag


def build_example_consumer_dag() -> DAG | None:
    """``dags/examples/``: a DAG scheduled on the Asset ``erp.products``; None (no DAG) unless
    ``LEGACY_SYNC_EXAMPLE_DAGS`` is set (see ``legacy_sync.erp_assets``)."""
    from legacy_sync.erp_assets import build_products_consumer_dag

    return build_products_consumer_dag()


def schedule_from_env(variable: str, default: str) -> str:
    """Deployment knob: a cron expression (or preset) from the environment."""
    return os.environ.get(variable) or default
