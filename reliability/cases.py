"""Fault cases for the sync: each breaks something during a run, lets the next run recover,
and ends with a reconciliation of the simulator's records against ``erp`` + open rejects,
by key and by content. Used by ``make reliability`` (every case, 3 times) and by
tests/reliability (a reduced set, once, in ``make test``).

The runs go through ``legacy_sync.pipeline``: the same steps, in the same order, that the
Airflow tasks call, as the DAG runs them: as the sync's least-privilege role of
docs/deployment.md (created by docker/erp-db-init's SQL), sharing the 4D session through the
DAG's own store (``legacy_sync.session_store.PostgresSessionStore``, encrypted with Airflow's
Fernet key). Open rejects must be exactly the records the simulator planted as bad plus their
dependents, and every case proves that its fault really happened (the simulator's
``faults_fired`` counters, or the killed process, the restarted server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from deploy.erp_db_init import create_sync_role, drop_role
from devtools.local_postgres import LocalPostgres
from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from legacy_sync import pipeline
from legacy_sync.contracts import FOURD_CONN_ID as CONN_ID  # the DAG's session row in fourd_session
from legacy_sync.fourd import FourDClient, FourDSettings
from legacy_sync.registry import TABLES
from legacy_sync.session_store import PostgresSessionStore

USER, PASSWORD = "sync", "reliability-password"
FAST = {"backoff_max_seconds": 0.2, "licence_backoff_seconds": 0.2, "licence_wait_seconds": 30.0}

# One business column per table whose value the reconciliation compares with 4D's.
CONTENT = {
    "Products": ("Price", "list_price"),
    "Customers": ("AccountNumber", "account_number"),
    "Orders": ("TotalDue", "total_due"),
    "OrderLines": ("Quantity", "quantity"),
    "Invoices": ("Amount", "amount"),
    "Inventory": ("Quantity", "quantity"),
    "BillOfMaterials": ("Quantity", "quantity"),
}


@dataclass
class Outcome:
    """What one case run found: zero lost, duplicated, stale and extra is a pass."""

    case: str
    expected: int = 0
    lost: int = 0
    duplicated: int = 0
    stale: int = 0
    extra: int = 0
    wrongly_rejected: int = 0
    """Good records (not planted bad, no bad parent) standing as rejects."""
    bad_loaded: int = 0
    """Planted bad records, or their dependents, that reached ``erp``."""
    misjudged: list[str] = field(default_factory=list)
    """A few of the wrongly rejected (with the reason given) and bad loaded records, to look at."""
    untruthful: list[str] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    """Evidence that the case's fault happened (each count must be > 0)."""
    session_stored: bool = False
    """The 4D session ended in the DAG's store (``legacy_sync.fourd_session``), encrypted."""
    seconds: float = 0.0
    error: str | None = None

    @property
    def fault_fired(self) -> bool:
        return bool(self.fired) and all(count > 0 for count in self.fired.values())

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.fault_fired
            and self.session_stored
            and not (
                self.lost
                or self.duplicated
                or self.stale
                or self.extra
                or self.wrongly_rejected
                or self.bad_loaded
                or self.untruthful
            )
        )


class Harness:
    """A simulator, an ERP database and a 4D client factory for one case run."""

    def __init__(self, sim: SimulatorServer, conninfo: str, read_timeout: float = 30.0) -> None:
        self.sim = sim
        self.conninfo = conninfo
        self.store = PostgresSessionStore(conninfo, CONN_ID)  # the DAG's store, shared with children
        self.fired: dict[str, int] = {}
        self.settings = FourDSettings(
            sim.base_url,
            USER,
            PASSWORD,
            page_size=200,
            read_timeout=read_timeout,
            **FAST,  # type: ignore[arg-type]
        )

    def client(self) -> FourDClient:
        return FourDClient(self.settings, store=self.store)

    def fired_since(self, kind: str, before: int) -> None:
        """Record how often the simulator fired ``kind`` since its counter stood at ``before``."""
        self.fired[kind] = self.sim.stats.faults_fired[kind] - before

    def run(self, run_id: str | None = None, mode: str = "incremental") -> str:
        run_id = run_id or f"rel_{uuid.uuid4().hex[:8]}"
        pipeline.run_once(self.conninfo, run_id, self.client, mode)
        return run_id

    def statuses(self, run_id: str) -> dict[str, str]:
        with psycopg.connect(self.conninfo) as conn:
            return dict(
                conn.execute(
                    "select table_name, status from legacy_sync.sync_log where run_id = %s", (run_id,)
                )
            )


def _same(source: Any, target: Any) -> bool:
    if source is None or target is None:
        return source is None and target is None
    if isinstance(target, Decimal | int | float):
        try:
            return abs(Decimal(str(source)) - Decimal(str(target))) < Decimal("0.0001")
        except ArithmeticError:
            return False
    return str(source).strip() == str(target).strip()


def expected_rejects(dataset: Dataset) -> dict[str, set[str]]:
    """Per table, the keys the sync must reject: the planted bad records still in 4D, the BOM rows
    that are their own parent (the generator makes a few by chance; a rule of the ERP), and the
    records referencing one of them or a record that does not exist (dependents, transitively)."""
    planted = {(table, key) for table, key, _ in dataset.planted_defects()}
    bad: dict[str, set[int]] = {}
    for table in TABLES:  # registry order: a table's parents come before it
        references = [(f.name, f.parent) for f in table.fields if f.parent]
        rejected = set()
        for key in dataset.keys(table.name):
            if (table.name, key) in planted:
                rejected.add(key)
                continue
            record = dataset.get(table.name, key) or {}
            parent_product = record.get("ParentProductID")
            if (
                table.name == "BillOfMaterials"
                and parent_product is not None
                and (parent_product == record.get("ComponentProductID"))
            ):
                rejected.add(key)
                continue
            for name, parent in references:
                value = record.get(name)
                if value is not None and (
                    int(value) in bad[parent] or dataset.get(parent, int(value)) is None
                ):
                    rejected.add(key)
                    break
        bad[table.name] = rejected
    return {table: {str(k) for k in keys} for table, keys in bad.items()}


def reconcile(dataset: Dataset, conninfo: str, tables: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per table: expected, lost, duplicated, stale, extra, wrongly rejected, bad loaded — source
    vs erp + open rejects, the rejects against the planted bad records and their dependents."""
    report: dict[str, dict[str, Any]] = {}
    must_reject = expected_rejects(dataset)
    with psycopg.connect(conninfo) as conn:
        for table in TABLES:
            if tables and table.name not in tables:
                continue
            source_field, column = CONTENT[table.name]
            erp = sql.Identifier("erp", table.snake_name)
            rows = conn.execute(
                sql.SQL("select legacy_id::text, {}, is_deleted from {}").format(sql.Identifier(column), erp)
            ).fetchall()
            live = {k: v for k, v, deleted in rows if not deleted}
            duplicated = len(rows) - len({r[0] for r in rows})
            # The standing rejects (not every sync_error row ever written: a record rejected
            # once and loaded later is no reject any more, and one wrongly rejected still is).
            reasons = dict(
                conn.execute(
                    "select record_id, error_message from legacy_sync.open_reject where table_name = %s",
                    (table.name,),
                ).fetchall()
            )
            rejected = set(reasons) - set(live)
            source = {
                str(k): (dataset.get(table.name, k) or {}).get(source_field) for k in dataset.keys(table.name)
            }
            stale = sum(1 for k, v in live.items() if k in source and not _same(source[k], v))
            bad = must_reject[table.name]
            wrong = sorted((rejected & set(source)) - bad, key=int)
            loaded = sorted(bad & set(live), key=int)
            report[table.name] = {
                "expected": len(source),
                "lost": len(set(source) - set(live) - rejected),
                "duplicated": duplicated,
                "stale": stale,
                "extra": len(set(live) - set(source)),
                "wrongly_rejected": len(wrong),
                "bad_loaded": len(loaded),
                "misjudged": [f"{table.name} {k} rejected: {reasons[k]}" for k in wrong[:3]]
                + [f"{table.name} {k} is bad but loaded" for k in loaded[:3]],
            }
    return report


def _outcome(h: Harness, case: str, started: float, untruthful: list[str]) -> Outcome:
    totals = Outcome(case, untruthful=untruthful, fired=dict(h.fired))
    for figures in reconcile(h.sim.dataset, h.conninfo).values():
        totals.expected += figures["expected"]
        totals.lost += figures["lost"]
        totals.duplicated += figures["duplicated"]
        totals.stale += figures["stale"]
        totals.extra += figures["extra"]
        totals.wrongly_rejected += figures["wrongly_rejected"]
        totals.bad_loaded += figures["bad_loaded"]
        totals.misjudged += figures["misjudged"]
    totals.session_stored = _session_stored_encrypted(h)
    totals.seconds = round(time.monotonic() - started, 1)
    return totals


def _session_stored_encrypted(h: Harness) -> bool:
    """The shared 4D session is in the DAG's table, and no simulator session id is readable there."""
    with psycopg.connect(h.conninfo) as conn:
        stored = [
            str(r[0])
            for r in conn.execute(
                "select cookie_value from legacy_sync.fourd_session where conn_id = %s", (CONN_ID,)
            )
        ]
    ids = [s.id for s in h.sim.simulator.sessions.sessions()]
    return bool(stored) and not any(i in value for i in ids for value in stored)


def truth_check(h: Harness, run_id: str) -> list[str]:
    """A table the run called COMPLETED/PARTIALLY_COMPLETED must have lost nothing."""
    statuses = h.statuses(run_id)
    report = reconcile(h.sim.dataset, h.conninfo, [t for t, s in statuses.items() if s != "FAILED"])
    return [f"{t} said {statuses[t]} but lost {f['lost']}" for t, f in report.items() if f["lost"]]


# -- the cases -------------------------------------------------------------------------------
Case = Callable[[Harness], list[str]]
"""Runs the faulty run(s) and the recovery; returns truthfulness problems seen on the way."""


def _faulty_run(kind: str, **params: Any) -> Case:
    def case(h: Harness) -> list[str]:
        h.run(mode="full")
        before = h.sim.stats.faults_fired[kind]
        h.sim.faults.set(kind, **params)
        h.sim.dataset.update("Products", min(h.sim.dataset.keys("Products")), {"Price": 99.5})
        try:
            run_id = h.run()
        finally:
            h.sim.faults.clear()
            h.fired_since(kind, before)
        problems = truth_check(h, run_id)
        h.run()
        return problems

    return case


def _churn_while_paging(h: Harness) -> list[str]:
    h.run(mode="full")
    stop = threading.Event()
    keys = sorted(h.sim.dataset.keys("OrderLines"))
    changes = [0]

    def churn() -> None:
        i = 0
        while not stop.is_set():
            key = keys[(i * 37) % len(keys)]
            with contextlib.suppress(KeyError):
                h.sim.dataset.update("OrderLines", key, {"Quantity": 1 + i % 5})
            with contextlib.suppress(KeyError):
                h.sim.dataset.delete("OrderLines", keys[(i * 101 + 7) % len(keys)])
            h.sim.dataset.insert(
                "OrderLines",
                {
                    "OrderID": 1,
                    "ProductID": 1,
                    "Quantity": 2,
                    "UnitPrice": 1.0,
                    "UnitPriceDiscount": 0,
                    "LineTotal": 2.0,
                },
            )
            i += 1
            changes[0] = i
            time.sleep(0.002)

    before = h.sim.stats.faults_fired["slow"]
    h.sim.faults.set("slow", delay=0.01)
    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    try:
        h.run()
    finally:
        stop.set()
        worker.join()
        h.sim.faults.clear()
        h.fired_since("slow", before)
        h.fired["changes while paging"] = changes[0]
    h.run()  # changes made during the last run arrive with the next one
    return []


def _child(code: str, conninfo: str, h: Harness) -> subprocess.Popen[bytes]:
    """A separate process running pipeline code, so it can be killed like a worker."""
    env = {
        **os.environ,
        "REL_CONNINFO": conninfo,
        "REL_URL": h.sim.base_url,
        "REL_USER": USER,
        "REL_PW": PASSWORD,
    }
    # Like the DAG's tasks, the child shares the one 4D session (one licence) through the DAG's store.
    prelude = (
        "import os\nfrom legacy_sync import pipeline\n"
        "from legacy_sync.fourd import FourDClient, FourDSettings\n"
        "from legacy_sync.session_store import PostgresSessionStore\n"
        f"store = PostgresSessionStore(os.environ['REL_CONNINFO'], {CONN_ID!r})\n"
        "client = lambda: FourDClient(FourDSettings(os.environ['REL_URL'], os.environ['REL_USER'],"
        " os.environ['REL_PW'], page_size=100), store=store)\nconninfo = os.environ['REL_CONNINFO']\n"
    )
    return subprocess.Popen([sys.executable, "-c", prelude + code], env=env, start_new_session=True)


def _wait_for(conninfo: str, query: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.Error), psycopg.connect(conninfo) as conn:
            if conn.execute(query).fetchone()[0]:
                return
        time.sleep(0.05)
    raise TimeoutError(query)


def _kill(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL the child's group; 1 when it was still working when killed (the fault fired)."""
    working = proc.poll() is None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return int(working and proc.returncode == -signal.SIGKILL)


def _extract_killed_and_retried(h: Harness) -> list[str]:
    h.run(mode="full")
    run_id = "rel_killed_task"
    pipeline.prepare(h.conninfo, run_id, "incremental", None)
    before = h.sim.stats.faults_fired["slow"]
    h.sim.faults.set("slow", delay=0.05)
    code = f"pipeline.extract_table(conninfo, {run_id!r}, {{'table': 'OrderLines', 'mode': 'full'}}, client)"
    proc = _child(code, h.conninfo, h)
    try:
        # Killed mid-table: after it started paging, before it could finish.
        _wait_for(
            h.conninfo, "select count(*) > 0 from pg_stat_activity where query ilike 'copy %order_lines_raw%'"
        )
        time.sleep(0.5)
    finally:
        h.fired["killed while landing"] = _kill(proc)
        h.sim.faults.clear()
        h.fired_since("slow", before)
    h.run(run_id)  # the retry: same run id, as Airflow retries a task
    return []


def _run_killed_and_retriggered(h: Harness) -> list[str]:
    h.run(mode="full")
    h.sim.dataset.update("Customers", min(h.sim.dataset.keys("Customers")), {"AccountNumber": "AW-KILLED-1"})
    proc = _child("pipeline.run_once(conninfo, 'rel_killed_run', client)", h.conninfo, h)
    try:
        _wait_for(
            h.conninfo, "select count(*) >= 4 from legacy_sync.landing_batch where run_id = 'rel_killed_run'"
        )
    finally:
        h.fired["killed mid-run"] = _kill(proc)
    h.run()  # re-triggered: a new run
    return []


def _dbt_fails_half_way(h: Harness) -> list[str]:
    h.run(mode="full")
    h.sim.dataset.update("OrderLines", min(h.sim.dataset.keys("OrderLines")), {"Quantity": 42})
    h.sim.dataset.update("Customers", min(h.sim.dataset.keys("Customers")), {"AccountNumber": "AW-DBT-1"})
    run_id = "rel_dbt_half"
    items = pipeline.prepare(h.conninfo, run_id, "incremental", None)
    for item in items:
        pipeline.extract_table(h.conninfo, run_id, item, h.client)
    with psycopg.connect(h.conninfo, autocommit=True) as conn:  # one model's input vanishes mid-build
        conn.execute("alter table legacy_staging.order_lines_raw rename to order_lines_raw_away")
    try:
        failed = pipeline.transform(h.conninfo, run_id)
    finally:
        with psycopg.connect(h.conninfo, autocommit=True) as conn:
            conn.execute("alter table legacy_staging.order_lines_raw_away rename to order_lines_raw")
    pipeline.summarize(h.conninfo, run_id, items, transform_finished=True)
    h.fired["dbt failed on the vanished input"] = int("OrderLines" in failed)
    problems = [] if "OrderLines" in failed else ["dbt did not report OrderLines as failed"]
    problems += truth_check(h, run_id)
    h.run()
    return problems


CASES: dict[str, Case] = {
    "transient 500 bursts": _faulty_run("error_500", every=3),
    "transient 503 bursts": _faulty_run("error_503", count=5, retry_after=0),
    "dropped connections": _faulty_run("drop_connection", every=4),
    "slow responses beyond the timeout": _faulty_run("slow", delay=2.5, count=3),
    "402 licence exhaustion then recovery": _faulty_run("licence_burst", count=4),
    "session expiry mid-table": _faulty_run("expire_sessions", after=8),
    "inserts/updates/deletes while paging": _churn_while_paging,
    "extract task killed mid-table and retried": _extract_killed_and_retried,
    "whole run killed and re-triggered": _run_killed_and_retriggered,
    "dbt failing half-way": _dbt_fails_half_way,
    "PostgreSQL restarted during landing": lambda h: [],  # replaced below: needs its own server
}
REDUCED = (
    "dropped connections",
    "session expiry mid-table",
    "extract task killed mid-table and retried",
    "dbt failing half-way",
    "PostgreSQL restarted during landing",
)


@contextlib.contextmanager
def erp_server() -> Iterator[tuple[str, LocalPostgres | None]]:
    """Where case databases live: ``ERP_DATABASE_URL``'s server, else a throw-away one."""
    url = os.environ.get("LEGACY_SYNC_TEST_PG_URL") or os.environ.get("ERP_DATABASE_URL")
    if url:
        yield url, None
        return
    with tempfile.TemporaryDirectory(prefix="lsync-rel-") as tmp, LocalPostgres(Path(tmp) / "pg") as server:
        yield server.url(), server


@contextlib.contextmanager
def _fresh_database(admin_url: str) -> Iterator[str]:
    """A new ERP database set up as erp-db's first start sets it up; yields the URL of the sync's
    least-privilege role in it (the DAG's ``erp_postgres_default``). Dropped, with the role, after."""
    name = f"rel_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    parts = urlsplit(admin_url)
    role = create_sync_role(urlunsplit(parts._replace(path=f"/{name}")))
    try:
        yield role.url
    finally:
        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            drop_role(admin_url, role.name)


def _postgres_restarted(h: Harness, server: LocalPostgres) -> list[str]:
    h.run(mode="full")
    h.sim.dataset.update("OrderLines", min(h.sim.dataset.keys("OrderLines")), {"Quantity": 7})
    h.sim.faults.set("slow", delay=0.05)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["run_id"] = h.run(mode="full")
        except Exception as exc:  # the run may fail as a whole; the next one must recover
            result["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _wait_for(h.conninfo, "select count(*) > 0 from pg_stat_activity where query ilike 'copy %raw%'")
        time.sleep(0.3)
        h.fired["restarted while landing"] = int(worker.is_alive())
        server.stop()
        server.start()
    finally:
        worker.join(300)
        h.sim.faults.clear()
    problems = truth_check(h, result["run_id"]) if "run_id" in result else []
    h.run()
    return problems


def run_case(name: str, scale: int = 2500, seed: int = 1) -> Outcome:
    """One run of one case on a fresh simulator and a fresh ERP database."""
    started = time.monotonic()
    dataset = Dataset.generate(scale, seed=seed, dirty=0.02)
    config = SimulatorConfig(username=USER, password=PASSWORD, licences=3)
    needs_own_server = name == "PostgreSQL restarted during landing"
    with contextlib.ExitStack() as stack:
        if needs_own_server:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lsync-rel-pg-"))
            server: LocalPostgres | None = stack.enter_context(LocalPostgres(Path(tmp) / "pg"))
            admin = server.url()
        else:
            admin, server = stack.enter_context(erp_server())
        conninfo = stack.enter_context(_fresh_database(admin))
        sim = stack.enter_context(SimulatorServer(dataset, config))
        timeout = 1.0 if name == "slow responses beyond the timeout" else 30.0
        harness = Harness(sim, conninfo, read_timeout=timeout)
        try:
            if needs_own_server:
                assert server is not None
                untruthful = _postgres_restarted(harness, server)
            else:
                untruthful = CASES[name](harness)
        except Exception as exc:
            return Outcome(
                name, error=f"{type(exc).__name__}: {exc}", seconds=round(time.monotonic() - started, 1)
            )
        return _outcome(harness, name, started, untruthful)
