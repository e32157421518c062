"""A whole sync, run in this process through ``legacy_sync.pipeline`` (the steps the DAG's tasks
call), against the 4D simulator and a real PostgreSQL, plus the checks every scenario ends with.

The invariants after any sequence of runs: no two live ERP rows share a business key, and every
4D record is either live in ``erp`` (with 4D's current content) or an open reject with a reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from legacy4d_simulator import SimulatorServer
from legacy_sync import pipeline
from legacy_sync.fourd import FourDClient
from legacy_sync.fourd.auth import MemorySessionStore
from legacy_sync.registry import TABLES, get_table

from .conftest import client_for, make_simulator

# One business column per table compared with 4D's value (4D field, erp column).
CONTENT = {
    "Products": ("Price", "list_price"),
    "Customers": ("AccountNumber", "account_number"),
    "Orders": ("TotalDue", "total_due"),
    "OrderLines": ("Quantity", "quantity"),
    "Invoices": ("Amount", "amount"),
    "Inventory": ("Quantity", "quantity"),
    "BillOfMaterials": ("Quantity", "quantity"),
}


class SyncHarness:
    """Runs syncs of one simulator into one ERP database and reads back what they left."""

    def __init__(self, sim: SimulatorServer, url: str, first_run: str | None = None) -> None:
        self.sim = sim
        self.url = url
        self.first_run = first_run  # the run the database was copied after (FirstSyncs)
        self.store = MemorySessionStore()  # one 4D session for every run, as in the DAG
        self.before_extract: Callable[[int], None] | None = None
        self._clients = 0

    @property
    def dataset(self) -> Any:
        return self.sim.dataset

    def client(self) -> FourDClient:
        self._clients += 1
        if self.before_extract is not None:
            self.before_extract(self._clients)
        return client_for(self.sim, store=self.store)

    def run(self, mode: str = "incremental", tables: list[str] | None = None, **options: Any) -> str:
        run_id = f"run_{uuid.uuid4().hex[:10]}"
        self._clients = 0
        pipeline.run_once(self.url, run_id, self.client, mode, tables, **options)
        return run_id

    # -- reading back -------------------------------------------------------------------------
    def query(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(text, params).fetchall()  # type: ignore[arg-type]

    def log(self, run_id: str) -> dict[str, dict[str, Any]]:
        with psycopg.connect(self.url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            rows = cur.execute("select * from legacy_sync.sync_log where run_id = %s", (run_id,)).fetchall()
        return {r["table_name"]: r for r in rows}

    def statuses(self, run_id: str) -> dict[str, str]:
        return {t: r["status"] for t, r in self.log(run_id).items()}

    def erp_row(self, table: str, key: int | str) -> dict[str, Any] | None:
        snake = get_table(table).snake_name
        with psycopg.connect(self.url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return cur.execute(
                sql.SQL("select * from {} where legacy_id = %s").format(sql.Identifier("erp", snake)),
                (str(key),),
            ).fetchone()

    def rejects(self, run_id: str, table: str) -> dict[str, str]:
        """{record id: reasons} rejected in ``run_id``."""
        rows = self.query(
            "select e.record_id, e.error_message from legacy_sync.sync_error e"
            " join legacy_sync.sync_log l on l.id = e.sync_log_id"
            " where l.run_id = %s and l.table_name = %s",
            run_id,
            table,
        )
        return dict(rows)

    def watermark(self, table: str) -> str | None:
        rows = self.query("select watermark from legacy_sync.sync_state where table_name = %s", table)
        return rows[0][0] if rows else None

    # -- the invariants -----------------------------------------------------------------------
    def duplicate_business_keys(self) -> dict[str, list[tuple[Any, int]]]:
        """Business keys held by more than one live ERP row, per table."""
        found = {}
        for table in TABLES:
            if not table.business_key:
                continue
            rows = self.query(
                sql.SQL(
                    "select {key}, count(*) from {erp} where not is_deleted"
                    " group by {key} having count(*) > 1"
                )
                .format(key=sql.Identifier(table.business_key), erp=sql.Identifier("erp", table.snake_name))
                .as_string(None)
            )
            if rows:
                found[table.name] = rows
        return found

    def unaccounted(self) -> dict[str, list[str]]:
        """4D records neither live in ``erp`` with 4D's content nor rejected, per table."""
        problems: dict[str, list[str]] = {}
        for table in TABLES:
            field, column = CONTENT[table.name]
            live = dict(
                self.query(
                    sql.SQL("select legacy_id, {} from {} where not is_deleted")
                    .format(sql.Identifier(column), sql.Identifier("erp", table.snake_name))
                    .as_string(None)
                )
            )
            rejected = {  # the rejects that still stand, each with its reason
                r[0]
                for r in self.query(
                    "select record_id from legacy_sync.open_reject where table_name = %s"
                    " and error_message <> ''",
                    table.name,
                )
            }
            bad = []
            for key in self.dataset.keys(table.name):
                k = str(key)
                if k in rejected:
                    continue
                if k not in live:
                    bad.append(f"{k} missing")
                elif not _same(self.dataset.get(table.name, key).get(field), live[k]):
                    bad.append(f"{k} stale")
            extra = set(live) - {str(k) for k in self.dataset.keys(table.name)}
            bad += [f"{k} extra" for k in sorted(extra)]
            if bad:
                problems[table.name] = bad[:10]
        return problems

    def assert_trustworthy(self) -> None:
        assert not self.duplicate_business_keys(), self.duplicate_business_keys()
        assert not self.unaccounted(), self.unaccounted()


Prepare = Callable[[SimulatorServer], None]


class FirstSyncs:
    """ERP databases after the first sync of a generated 4D data set, made once per test session
    and copied for each test that starts there (CREATE DATABASE ... TEMPLATE): the first run of
    a data set always ends the same, so most scenarios need not pay for it again.

    A copy comes with a fresh simulator generated and prepared exactly as the template's was
    (generation is seeded, and the first run only reads), so 4D and the ERP agree as after that run.
    """

    def __init__(self, pg_server: Any) -> None:
        self.pg = pg_server
        self._templates: dict[tuple[int, int, str], tuple[str, str]] = {}  # -> (url, first run id)

    @contextmanager
    def harness(self, scale: int, seed: int, prepare: Prepare | None = None) -> Iterator[SyncHarness]:
        """A harness on a copy of the data set's first-synced database; the copy goes afterwards."""
        key = (scale, seed, prepare.__qualname__ if prepare else "")
        if key not in self._templates:
            url = self.pg.create_sync_database("first")
            with self._simulator(scale, seed, prepare) as sim:
                self._templates[key] = (url, SyncHarness(sim, url).run())
        template, first_run = self._templates[key]
        url = self.pg.copy_sync_database(template)
        try:
            with self._simulator(scale, seed, prepare) as sim:
                yield SyncHarness(sim, url, first_run)
        finally:
            self.pg.drop_database(url)

    @staticmethod
    @contextmanager
    def _simulator(scale: int, seed: int, prepare: Prepare | None) -> Iterator[SimulatorServer]:
        with make_simulator(scale=scale, seed=seed) as sim:
            if prepare is not None:
                prepare(sim)
            yield sim

    def drop_all(self) -> None:
        for url, _ in self._templates.values():
            self.pg.drop_database(url)
        self._templates.clear()


def _same(source: Any, target: Any) -> bool:
    if source is None or target is None:
        return source is None and target is None
    if isinstance(target, Decimal | int | float):
        try:
            return abs(Decimal(str(source)) - Decimal(str(target))) < Decimal("0.0001")
        except ArithmeticError:
            return False
    return str(source).strip() == str(target).strip()
