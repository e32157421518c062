"""The sync DAG end to end with ``airflow dags test``: simulator → staging → dbt → erp → sync log.

One Airflow home and one ERP database for the module; the runs build on each other like a
real deployment's: first sync, a quiet re-run, changes at the source, then a broken table.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from devtools.local_run import airflow_env, dags_test, prepare_airflow
from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from legacy_sync import erp_db
from legacy_sync.registry import TABLES

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "sync", "e2e-password"


class Deployment:
    """A simulator, an ERP database and an Airflow home that run the DAG."""

    def __init__(self, sim: SimulatorServer, erp_url: str, home: Path) -> None:
        self.sim = sim
        self.erp_url = erp_url
        self.env = airflow_env(home, PROJECT_ROOT, erp_url, sim.base_url, USER, PASSWORD)
        self.log = home / "runs.log"
        prepare_airflow(self.env, self.log)

    def run(self, dag_id: str = "legacy_erp_sync", **conf: Any) -> tuple[int, str]:
        code = dags_test(self.env, self.log, dag_id, conf or None)
        with psycopg.connect(self.erp_url) as conn:
            run_id = conn.execute(
                "select run_id from legacy_sync.sync_log order by id desc limit 1"
            ).fetchone()[0]
        return code, run_id

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.erp_url) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, *params: Any) -> None:
        with psycopg.connect(self.erp_url) as conn:
            conn.execute(sql, params)

    def log_rows(self, run_id: str) -> dict[str, dict[str, Any]]:
        with psycopg.connect(self.erp_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            rows = cur.execute("select * from legacy_sync.sync_log where run_id = %s", (run_id,)).fetchall()
        return {r["table_name"]: r for r in rows}


@pytest.fixture(scope="module")
def deployment(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dataset = Dataset.generate(4000, seed=11, dirty=0.03)
    erp_url = pg_server.create_sync_database("e2e")
    with SimulatorServer(dataset, SimulatorConfig(username=USER, password=PASSWORD, licences=3)) as sim:
        yield Deployment(sim, erp_url, tmp_path_factory.mktemp("airflow"))
    pg_server.drop_database(erp_url)


def test_first_run_loads_or_rejects_every_record(deployment: Deployment) -> None:
    code, run_id = deployment.run()
    assert code == 0, f"DAG run failed; see {deployment.log}"
    logs = deployment.log_rows(run_id)
    assert set(logs) == {t.name for t in TABLES}
    dataset = deployment.sim.dataset
    for table in TABLES:
        row = logs[table.name]
        source = dataset.count(table.name)
        loaded = deployment.query(f"select count(*) from erp.{table.snake_name} where not is_deleted")[0][0]
        errors = deployment.query(
            "select count(*) from legacy_sync.sync_error where sync_log_id = %s", row["id"]
        )[0][0]
        assert loaded + errors == source, f"{table.name}: {loaded} loaded + {errors} rejected != {source}"
        assert row["records_created"] == loaded and row["records_failed"] == errors
        assert row["records_processed"] == source
        assert row["status"] == ("PARTIALLY_COMPLETED" if errors else "COMPLETED")
        assert row["start_time"] <= row["end_time"]


def test_the_dag_ran_as_the_least_privilege_role_not_a_superuser(deployment: Deployment) -> None:
    """erp_postgres_default is docs/deployment.md's sync role: what the run created is its own."""
    connection = json.loads(deployment.env["AIRFLOW_CONN_ERP_POSTGRES_DEFAULT"])
    sync_role = urlsplit(deployment.erp_url).username
    assert sync_role and connection["login"] == sync_role
    owners = deployment.query(
        "select distinct tableowner from pg_tables"
        " where schemaname in ('legacy_staging', 'legacy_transform', 'erp', 'legacy_sync')"
    )
    assert owners, "no table yet: this test reads what test_first_run_loads_or_rejects_every_record made"
    assert owners == [(sync_role,)], f"tables created by {owners}, not by the sync's role {sync_role}"
    assert deployment.query(
        "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = %s", sync_role
    ) == [(False, False, False)]


def test_secrets_never_reach_logs_or_sync_error(deployment: Deployment) -> None:
    session_ids = [s.id for s in deployment.sim.simulator.sessions.sessions()]
    assert session_ids, "no 4D session was opened"
    logged = deployment.log.read_text()
    errors = str(deployment.query("select error_message, record_data::text from legacy_sync.sync_error"))
    stored = str(deployment.query("select cookie_value from legacy_sync.fourd_session"))
    for secret in [PASSWORD, *session_ids]:
        assert secret not in logged and secret not in errors
    for sid in session_ids:
        assert sid not in stored, "the session cookie is stored unencrypted"


def test_planted_bad_records_are_rejected_with_reasons_and_raw_data(deployment: Deployment) -> None:
    planted = deployment.sim.dataset.planted_defects()
    assert planted
    rejected = {
        (table, record): (message, data)
        for table, record, message, data in deployment.query(
            "select l.table_name, e.record_id, e.error_message, e.record_data from legacy_sync.sync_error e"
            " join legacy_sync.sync_log l on l.id = e.sync_log_id"
        )
    }
    for table, key, kind in planted:
        assert (table, str(key)) in rejected, f"{table} {key} ({kind}) was not rejected"
        message, data = rejected[(table, str(key))]
        assert message.strip()
        assert str(data["__KEY"]) == str(key)


def test_a_quiet_rerun_changes_nothing(deployment: Deployment) -> None:
    before = {
        t.snake_name: deployment.query(f"select max(synced_at) from erp.{t.snake_name}")[0][0] for t in TABLES
    }
    code, run_id = deployment.run()
    assert code == 0
    for table, row in deployment.log_rows(run_id).items():
        # 4D reported no change: nothing read, nothing written; earlier rejects still count.
        assert (row["records_processed"], row["records_created"], row["records_updated"]) == (0, 0, 0), table
        open_rejects = deployment.query(
            "select count(*) from legacy_sync.open_reject where table_name = %s", table
        )[0][0]
        assert row["records_open_rejects"] == open_rejects
        assert row["status"] == ("PARTIALLY_COMPLETED" if open_rejects else "COMPLETED")
    after = {
        t.snake_name: deployment.query(f"select max(synced_at) from erp.{t.snake_name}")[0][0] for t in TABLES
    }
    assert after == before, "a run over unchanged data touched erp rows"


def test_changes_at_the_source_arrive_and_only_they(deployment: Deployment) -> None:
    dataset = deployment.sim.dataset
    defects = {(t, k) for t, k, _ in dataset.planted_defects()}
    good = [k for k in dataset.keys("Customers") if ("Customers", k) not in defects]
    dataset.update("Customers", good[0], {"Email": "new.address@example.com"})
    dataset.update("Customers", good[1], {"Phone": "555-0100"})
    new_key = dataset.insert("Customers", {"AccountNumber": "AW-NEW-1", "CompanyName": "New Store"})
    code, run_id = deployment.run()
    assert code == 0
    row = deployment.log_rows(run_id)["Customers"]
    assert (row["records_created"], row["records_updated"]) == (1, 2)
    email = deployment.query("select email from erp.customers where legacy_id::text = %s", str(good[0]))
    assert email == [("new.address@example.com",)]
    assert deployment.query(
        "select company_name from erp.customers where legacy_id::text = %s", str(new_key)
    ) == [("New Store",)]


def test_a_broken_table_fails_alone_and_keeps_its_watermark(deployment: Deployment) -> None:
    watermark = deployment.query("select watermark from legacy_sync.sync_state where table_name = 'Invoices'")
    deployment.sim.faults.set("refuse_table", table="Invoices", hidden=True)
    product = min(deployment.sim.dataset.keys("Products"))
    deployment.sim.dataset.update("Products", product, {"Color": "Teal"})
    try:
        code, run_id = deployment.run()
    finally:
        deployment.sim.faults.clear()
    assert code != 0, "the run must be marked failed so alerting sees it"
    logs = deployment.log_rows(run_id)
    assert logs["Invoices"]["status"] == "FAILED"
    assert "1800" in logs["Invoices"]["error_message"]
    assert "Invoices" in logs["Invoices"]["error_message"]
    others = {name: row["status"] for name, row in logs.items() if name != "Invoices"}
    assert set(others.values()) <= {"COMPLETED", "PARTIALLY_COMPLETED"}, others
    assert logs["Products"]["records_updated"] == 1
    assert deployment.query("select color from erp.products where legacy_id::text = %s", str(product)) == [
        ("Teal",)
    ]
    assert (
        deployment.query("select watermark from legacy_sync.sync_state where table_name = 'Invoices'")
        == watermark
    )


def table_snake(name: str) -> str:
    return next(t.snake_name for t in TABLES if t.name == name)


def test_replay_loads_records_rejected_before_a_mapping_fix(deployment: Deployment, tmp_path: Path) -> None:
    nameless = [
        str(k)
        for t, k, kind in deployment.sim.dataset.planted_defects()
        if t == "Customers" and kind == "missing_name"
    ]
    assert nameless
    assert not deployment.query("select 1 from erp.customers where legacy_id::text = any(%s)", nameless)
    watermarks = deployment.query("select table_name, watermark from legacy_sync.sync_state order by 1")
    # The mapping fix: the ERP team accepts customers without a name after all.
    fixed = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", fixed, ignore=shutil.ignore_patterns("target", "logs"))
    model = fixed / "models" / "intermediate" / "int_customers__checked.sql"
    model.write_text(model.read_text().replace("            no_name_reason,\n", ""))
    deployment.env["LEGACY_SYNC_DBT_PROJECT_DIR"] = str(fixed)
    requests_before = deployment.sim.stats.as_dict()["requests"]
    try:
        code, run_id = deployment.run(replay_errors=True)
    finally:
        deployment.env["LEGACY_SYNC_DBT_PROJECT_DIR"] = str(PROJECT_ROOT / "dbt_project")
    assert code == 0, f"replay run failed; see {deployment.log}"
    logs = deployment.log_rows(run_id)
    assert {row["mode"] for row in logs.values()} == {"replay"}
    assert logs["Customers"]["records_created"] >= len(nameless)
    loaded = deployment.query(
        "select legacy_id::text from erp.customers where legacy_id::text = any(%s)", nameless
    )
    assert sorted(r[0] for r in loaded) == sorted(nameless)
    assert (
        deployment.query("select table_name, watermark from legacy_sync.sync_state order by 1") == watermarks
    )
    # Replay maps stored raw data: only the reconcile step's one count per table reaches 4D.
    assert deployment.sim.stats.as_dict()["requests"] - requests_before <= 2 * len(logs)


def test_cli_status_and_errors_read_the_sync_log(deployment: Deployment) -> None:
    cli = [str(Path(sys.executable).with_name("legacy-sync"))]
    status = subprocess.run(
        [*cli, "status", "--database-url", deployment.erp_url], capture_output=True, text=True, timeout=120
    )
    last_run = deployment.query("select run_id from legacy_sync.sync_log order by id desc limit 1")[0][0]
    assert last_run in status.stdout and "Customers" in status.stdout
    table, some_reject = deployment.query(
        "select l.table_name, e.record_id from legacy_sync.sync_error e"
        " join legacy_sync.sync_log l on l.id = e.sync_log_id order by e.id desc limit 1"
    )[0]
    errors = subprocess.run(
        [*cli, "errors", "--table", table, "--database-url", deployment.erp_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert f" {some_reject} " in errors.stdout.replace("│", " ")


# -- trust on real legacy data, over several runs (issue 13) ----------------------------------


def good_keys(deployment: Deployment, table: str) -> list[int]:
    defects = {(t, k) for t, k, _ in deployment.sim.dataset.planted_defects()}
    return sorted(k for k in deployment.sim.dataset.keys(table) if (table, k) not in defects)


def test_an_older_product_claiming_a_held_sku_fails_no_table(deployment: Deployment) -> None:
    dataset = deployment.sim.dataset
    low, high = good_keys(deployment, "Products")[:2]
    holder_sku = dataset.get("Products", high)["SKU"]
    dataset.update("Products", low, {"SKU": holder_sku})
    dataset.update("Products", high, {"Price": 321.5})
    for _ in range(2):  # the claim is rejected, and the next run is not failed either
        code, run_id = deployment.run()
        assert code == 0, deployment.log_rows(run_id)
    assert deployment.query("select sku, list_price from erp.products where legacy_id = %s", str(high)) == [
        (holder_sku, 321.5)
    ]
    assert not deployment.query(
        "select sku from erp.products where not is_deleted group by sku having count(*) > 1"
    )
    assert deployment.query(
        "select retry from legacy_sync.open_reject where table_name = 'Products' and record_id = %s", str(low)
    ) == [(True,)]


def test_dependents_of_a_table_refused_for_one_run_load_on_the_next(deployment: Deployment) -> None:
    dataset = deployment.sim.dataset
    customer = dataset.insert("Customers", {"AccountNumber": "AW-E2E-9", "CompanyName": "Late Store"})
    order_template = dataset.get("Orders", good_keys(deployment, "Orders")[0])
    order = dataset.insert(
        "Orders", {**order_template, "OrderID": None, "OrderNumber": "SO-E2E-9", "CustomerID": customer}
    )
    product = good_keys(deployment, "Products")[-1]
    line = dataset.insert(
        "OrderLines",
        {
            "OrderID": order,
            "ProductID": product,
            "Quantity": 1,
            "UnitPrice": 5,
            "UnitPriceDiscount": 0,
            "LineTotal": 5,
        },
    )
    deployment.sim.faults.set("refuse_table", table="Customers", hidden=True)
    try:
        code, run_id = deployment.run()
    finally:
        deployment.sim.faults.clear()
    assert code != 0 and deployment.log_rows(run_id)["Customers"]["status"] == "FAILED"
    code, run_id = deployment.run()  # Customers is back: no replay, no full sync
    assert code == 0, deployment.log_rows(run_id)
    for table, key in (("customers", customer), ("orders", order), ("order_lines", line)):
        assert deployment.query(f"select is_deleted from erp.{table} where legacy_id = %s", str(key)) == [
            (False,)
        ], table


def test_a_mass_delete_waits_for_a_person(deployment: Deployment) -> None:
    dataset = deployment.sim.dataset
    keys = good_keys(deployment, "Inventory")
    victims = keys[: max(11, len(keys) // 4)]
    for key in victims:
        dataset.delete("Inventory", key)
    code, run_id = deployment.run()
    assert code == 0  # held, not failed
    row = deployment.log_rows(run_id)["Inventory"]
    assert row["status"] == "PARTIALLY_COMPLETED" and row["records_deletes_held"] == len(victims)
    assert deployment.query(
        "select count(*) from erp.inventory where not is_deleted and legacy_id = any(%s)",
        [str(k) for k in victims],
    ) == [(len(victims),)]
    code, run_id = deployment.run(apply_held_deletes=True, tables=["Inventory"])
    assert code == 0, deployment.log_rows(run_id)
    assert deployment.query(
        "select count(*) from erp.inventory where is_deleted and legacy_id = any(%s)",
        [str(k) for k in victims],
    ) == [(len(victims),)]
    assert deployment.query("select count(*) from legacy_sync.held_delete where status = 'HELD'") == [(0,)]


def test_after_all_these_runs_every_record_is_accounted_for(deployment: Deployment) -> None:
    """No two live ERP rows share a business key; every 4D record is live or an open reject."""
    dataset = deployment.sim.dataset
    for table in TABLES:
        if table.business_key:
            assert not deployment.query(
                f"select {table.business_key} from erp.{table.snake_name} where not is_deleted"
                f" group by {table.business_key} having count(*) > 1"
            ), table.name
        live = {
            r[0]
            for r in deployment.query(f"select legacy_id from erp.{table.snake_name} where not is_deleted")
        }
        open_rejects = {
            r[0]
            for r in deployment.query(
                "select record_id from legacy_sync.open_reject where table_name = %s", table.name
            )
        }
        source = {str(k) for k in dataset.keys(table.name)}
        assert not source - live - open_rejects, (table.name, sorted(source - live - open_rejects)[:5])
        assert not live - source, (table.name, sorted(live - source)[:5])


def test_plain_dbt_test_is_the_integrity_check_of_the_erp(deployment: Deployment) -> None:
    env = {
        **deployment.env,
        **erp_db.dbt_env(deployment.erp_url),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    project = PROJECT_ROOT / "dbt_project"
    dbt = [
        str(Path(sys.executable).with_name("dbt")),
        "--no-use-colors",
        "test",
        "--profiles-dir",
        str(project),
    ]
    dbt += ["--project-dir", str(project), "--target-path", str(deployment.log.parent / "dbt-test")]
    clean = subprocess.run(dbt, env=env, capture_output=True, text=True, timeout=600, cwd=project)
    assert clean.returncode == 0, clean.stdout[-6000:]
    line, order_id = deployment.query(
        "select legacy_id, order_id from erp.order_lines where not is_deleted order by id limit 1"
    )[0]
    deployment.execute("update erp.order_lines set order_id = -1 where legacy_id = %s", line)
    try:
        broken = subprocess.run(dbt, env=env, capture_output=True, text=True, timeout=600, cwd=project)
    finally:
        deployment.execute("update erp.order_lines set order_id = %s where legacy_id = %s", order_id, line)
    assert broken.returncode != 0
    report = [x for x in broken.stdout.splitlines() if x.split("  ", 1)[-1].startswith("FAIL OrderLines")]
    assert report and line in report[0], broken.stdout[-6000:]
