"""The cutover DAGs and the sync DAGs' cutover tasks (issue 18); DAG files only call these.

- ``legacy_erp_diff`` (weekly, ``LEGACY_SYNC_DIFF_SCHEDULE``, and on demand with ``tables``):
  ``begin -> coverage + read_4d[table] (mapped, pool legacy_4d) -> compare -> finish``: the
  coverage audit, then the legacy-vs-ERP diff and its readiness score (``diff.py``); a score
  below the threshold warns through the notifiers.
- ``legacy_erp_freshness`` (every 15 minutes, ``LEGACY_SYNC_FRESHNESS_SCHEDULE``): the watchdog
  that alerts once when a table's last successful sync is older than its limit, also when no
  sync runs at all (``freshness.py``). It reads no 4D and takes no licence.
- ``legacy_erp_schema_drift`` (triggered by the sync DAGs): a person approves the new structure
  of a frozen table (Airflow's human-in-the-loop ``ApprovalOperator``), or rejects and it stays
  frozen until 4D goes back.
- In each sync DAG, after ``summarize``: ``send_digest`` (one digest per run, ``digest.py``) and
  ``drift_waits -> request_drift_approval`` (only when the run froze a table).

The digest is a task rather than a DAG ``on_success_callback``/``on_failure_callback`` notifier:
DAG callbacks run in the DAG processor, which needs no access to the ERP database the digest is
read from; a task runs where the sync runs, retries, shows in the UI, and runs under
``airflow dags test`` too. It still speaks through Airflow notifiers (``notify.py``).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

from legacy_sync.contracts import DIFF_DAG_ID, DRIFT_DAG_ID, FRESHNESS_DAG_ID, POOL
from legacy_sync.registry import TABLE_NAMES

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DEFAULT_ARGS = {"owner": "erp-migration", "retries": 0}
TAGS = ["legacy-4d", "erp", "cutover"]


def _conninfo() -> str:
    from legacy_sync import erp_db

    return erp_db.conninfo_from_airflow()


def _fourd_client() -> Any:
    from legacy_sync.hook import shared_session_client

    return shared_session_client()


def add_sync_tasks(dag_id: str, summary: Any) -> None:
    """Inside a sync DAG: the run's digest and, when the run froze a table, the approval request."""

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def send_digest() -> str | None:
        """One digest per run through the configured notifiers (an identical repeat is suppressed).

        Then it fails when a table of the run FAILED: Airflow decides a run's state by its last
        tasks, and this is one of them, so the run is marked failed as ``summarize`` intends.
        """
        from airflow.sdk.exceptions import AirflowFailException

        from legacy_sync import digest, erp_db, ledger

        context = get_current_context()
        message = digest.send(_conninfo(), context["run_id"], dag_id, context)
        with erp_db.connect(_conninfo()) as conn:
            failed = [
                r for r in ledger.run_summary(conn, context["run_id"]) if r.status == ledger.Status.FAILED
            ]
        if failed:
            raise AirflowFailException(
                f"{len(failed)} table(s) failed (the digest says why): " + ", ".join(r.table for r in failed)
            )
        return message.subject if message else None

    @task.short_circuit(trigger_rule=TriggerRule.ALL_DONE, ignore_downstream_trigger_rules=False)
    def drift_waits() -> str | None:
        """The structure changes this run froze tables for (else nothing downstream runs)."""
        from legacy_sync import cutover_ledger, erp_db

        with erp_db.connect(_conninfo(), autocommit=True) as conn:
            rows = cutover_ledger.drift_reports(conn, get_current_context()["run_id"])
        waiting = [r for r in rows if r["status"] == "PENDING"]
        return (
            "\n".join(f"- **{r['table_name']}** [{r['severity']}]: {r['message']}" for r in waiting) or None
        )

    request_drift_approval = TriggerDagRunOperator(
        task_id="request_drift_approval",
        trigger_dag_id=DRIFT_DAG_ID,
        conf={"summary": "{{ ti.xcom_pull(task_ids='drift_waits') }}", "run_id": "{{ run_id }}"},
    )
    summary >> send_digest()
    summary >> drift_waits() >> request_drift_approval


def build_drift_approval_dag() -> DAG:
    """A person accepts (or not) the new 4D structure of frozen tables."""
    # Imported here, by the one DAG that declares it: the sync DAG files need not pay for it.
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    with DAG(
        dag_id=DRIFT_DAG_ID,
        description="Legacy 4D ERP -> ERP: accept a frozen table's new 4D structure",
        schedule=None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=TAGS,
        doc_md=(
            "4D's structure of a table with the `freeze` drift policy changed in a breaking way (its key "
            "or a field the sync reads removed, or the table un-exposed), so the table fails every run "
            "until you decide. Check the change with the 4D developer and the mapping. **Approve** makes "
            "4D's new structure the one the sync knows (the table syncs again as far as it can); "
            "**Reject** keeps the table frozen until 4D goes back. Also `legacy-sync drift --accept T`."
        ),
        default_args=DEFAULT_ARGS,
    ) as dag:
        decide = ApprovalOperator(
            task_id="decide",
            subject="Legacy sync: 4D's structure changed, a frozen table waits",
            body=(
                "Run `{{ dag_run.conf.get('run_id', 'on demand') }}` found:\n\n"
                "{{ dag_run.conf.get('summary') or 'see the Cutover page of the Legacy sync monitor' }}\n\n"
                "**Approve** accepts the new structure of every frozen table; **Reject** keeps them frozen."
            ),
        )

        @task
        def accept() -> dict[str, int]:
            from legacy_sync import drift, erp_db

            with erp_db.connect(_conninfo(), autocommit=True) as conn:
                return drift.accept(conn, None, "human-in-the-loop approval")

        decide >> accept()
    return dag


def build_diff_dag(schedule: str | None) -> DAG:
    """Coverage audit, then the legacy-vs-ERP diff and the readiness score."""
    with DAG(
        dag_id=DIFF_DAG_ID,
        description="Legacy 4D ERP vs ERP: coverage, differences by key and column, readiness score",
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=TAGS,
        params={
            "tables": Param(
                list(TABLE_NAMES),
                type="array",
                items={"type": "string", "enum": list(TABLE_NAMES)},
                title="Tables",
                description="Legacy 4D tables to compare (default: all).",
            )
        },
        doc_md=(
            "**Can we switch the legacy ERP off?** Reads every record of each table from 4D again, maps "
            "it with the sync's own dbt models (into schema `legacy_diff`, never the sync's working "
            "tables: no ERP lock, the hourly sync runs on) and compares it with `erp` by key and column. "
            "Results, the differing keys (CSV) and the readiness trend are on the *Cutover* page of the "
            "Legacy sync monitor; a score below `LEGACY_SYNC_READINESS_THRESHOLD` warns through the "
            "notifiers. The coverage audit lists what 4D shows that the sync does not move."
        ),
        default_args=DEFAULT_ARGS,
    ) as dag:

        @task
        def begin() -> list[str]:
            from legacy_sync import diff

            context = get_current_context()
            return diff.begin(
                _conninfo(), diff.diff_id_for(context["run_id"]), context["params"].get("tables"), DIFF_DAG_ID
            )

        @task(pool=POOL)
        def coverage() -> str:
            """What 4D's REST user can see that the sync does not move."""
            from legacy_sync import erp_db
            from legacy_sync.coverage import audit, store

            with _fourd_client() as client:
                report = audit(client)
            with erp_db.connect(_conninfo(), autocommit=True) as conn:
                store(conn, report, get_current_context()["run_id"])
            return report.verdict()

        @task(
            pool=POOL,
            retries=2,
            retry_delay=dt.timedelta(minutes=1),
            map_index_template="{{ task.op_kwargs['table'] }}",
        )
        def read_4d(table: str) -> int:
            """Every record of one table, by key pages, landed under the diff's run id."""
            from legacy_sync import diff

            run_id = get_current_context()["run_id"]
            return diff.land(_conninfo(), diff.diff_id_for(run_id), table, _fourd_client)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def compare(tables: list[str]) -> dict[str, Any]:
            """Map with the sync's dbt models (schema legacy_diff), compare with erp."""
            from legacy_sync import diff

            run_id = get_current_context()["run_id"]
            compared = diff.map_and_compare(_conninfo(), diff.diff_id_for(run_id), tables)
            return {t: r["readiness"] for t, r in compared.items()}

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def finish() -> dict[str, Any]:
            """Readiness overall and per table; warn below the threshold; drop the landed rows."""
            from legacy_sync import diff

            context = get_current_context()
            outcome = diff.finish(_conninfo(), diff.diff_id_for(context["run_id"]))
            diff.notify_readiness(outcome, context)
            return {"status": outcome.status, "readiness": outcome.readiness, "warnings": outcome.warnings}

        tables = begin()
        read = read_4d.expand(table=tables)
        tables >> coverage()
        read >> compare(tables) >> finish()  # type: ignore[arg-type]  # an XComArg at parse time
    return dag


def build_freshness_dag(schedule: str | None) -> DAG:
    """The watchdog: tables whose last successful sync is older than their limit."""
    with DAG(
        dag_id=FRESHNESS_DAG_ID,
        description="Legacy 4D ERP -> ERP: alert when a table has not synced for too long",
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=TAGS,
        doc_md=(
            "Alerts once (through the configured notifiers) when a table's last successful sync is older "
            "than its limit (three intervals of `legacy_erp_sync`'s schedule unless the registry says "
            "otherwise), also when no sync runs at all; says when it recovered. Reads no 4D."
        ),
        default_args={**DEFAULT_ARGS, "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    ) as dag:

        @task
        def check_freshness() -> dict[str, list[str]]:
            from legacy_sync import freshness

            outcome = freshness.check(_conninfo(), context=get_current_context())
            return {
                "stale": [a.table for a in outcome.stale],
                "alerted": [a.table for a in outcome.alerted],
                "recovered": [a.table for a in outcome.recovered],
            }

        check_freshness()
    return dag


def schedule_from_env(variable: str, default: str) -> str | None:
    """A cron expression or preset from the environment; ``none`` (or ``off``): on demand only."""
    value = (os.environ.get(variable) or default).strip()
    return None if value.lower() in ("none", "off") else value
