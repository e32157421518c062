"""Extract + land against the 4D simulator into a real PostgreSQL: every record exactly once."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from legacy4d_simulator import SimulatorServer
from legacy_sync import landing
from legacy_sync.fourd.errors import PagingError
from legacy_sync.landing import land_table
from legacy_sync.ledger import read_state
from legacy_sync.registry import TABLES, Strategy, get_table
from legacy_sync.session_store import PostgresSessionStore

from .conftest import client_for, make_simulator

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]


def landed_keys(conn: Conn, table: str, run_id: str) -> Counter[str]:
    raw = get_table(table).raw_table
    rows = conn.execute(f"select legacy_id from legacy_staging.{raw} where run_id = %s", (run_id,)).fetchall()
    return Counter(r[0] for r in rows)


def source_keys(sim: SimulatorServer, table: str) -> set[str]:
    return {str(k) for k in sim.dataset.keys(table)}


def merge_watermark(conn: Conn, run_id: str, table: str) -> None:
    """What the summary task does after dbt merged a table: move its watermark."""
    conn.execute(
        "insert into legacy_sync.sync_state (table_name, strategy, watermark, last_run_id)"
        " select table_name, strategy, watermark_to, run_id from legacy_sync.landing_batch"
        " where run_id = %s and table_name = %s"
        " on conflict (table_name) do update"
        " set strategy = excluded.strategy, watermark = excluded.watermark",
        (run_id, table),
    )


def assert_exactly_once(conn: Conn, sim: SimulatorServer, table: str, run_id: str) -> None:
    keys = landed_keys(conn, table, run_id)
    duplicated = [k for k, n in keys.items() if n > 1]
    assert not duplicated, f"{table}: landed more than once: {duplicated[:10]}"
    expected = source_keys(sim, table)
    missing = expected - set(keys)
    assert not missing, f"{table}: {len(missing)} records never landed, e.g. {sorted(missing)[:10]}"
    assert set(keys) == expected


def test_full_extract_lands_every_table_exactly_once(sim: SimulatorServer, erp: Conn) -> None:
    with client_for(sim) as client:
        results = [land_table(client, erp, table, "r1", "full") for table in TABLES]
    for table, result in zip(TABLES, results, strict=True):
        assert_exactly_once(erp, sim, table.name, "r1")
        assert result.records_landed == sim.dataset.count(table.name) == result.source_count
        assert result.complete_key_set and result.strategy == "global_stamp"
    batch = erp.execute(
        "select count(*), bool_and(complete_key_set) from legacy_sync.landing_batch where run_id = 'r1'"
    ).fetchone()
    assert batch == (len(TABLES), True)
    payload = erp.execute("select payload from legacy_staging.products_raw limit 1").fetchone()[0]
    assert {"__KEY", "__STAMP", "ProductID", "SellStartDate"} <= set(payload)


def test_retrying_a_landing_for_the_same_run_replaces_it(sim: SimulatorServer, erp: Conn) -> None:
    table = get_table("OrderLines")
    with client_for(sim) as client:
        land_table(client, erp, table, "r1", "full")
        land_table(client, erp, table, "r1", "full")
    assert_exactly_once(erp, sim, "OrderLines", "r1")


def test_incremental_global_stamp_lands_only_changes_and_deletions(sim: SimulatorServer, erp: Conn) -> None:
    table = get_table("Products")
    with client_for(sim) as client:
        land_table(client, erp, table, "r1", "full")
        merge_watermark(erp, "r1", "Products")
        keys = sorted(sim.dataset.keys("Products"))
        sim.dataset.update("Products", keys[0], {"Price": 12.5})
        sim.dataset.update("Products", keys[5], {"ProductName": "Renamed"})
        new_key = sim.dataset.insert("Products", {"ProductName": "New", "SKU": "NEW-1", "Price": 1})
        sim.dataset.delete("Products", keys[3])
        result = land_table(client, erp, table, "r2", "incremental", read_state(erp, table))
    assert set(landed_keys(erp, "Products", "r2")) == {str(keys[0]), str(keys[5]), str(new_key)}
    deleted = erp.execute(
        "select legacy_id from legacy_staging.deleted_records_raw where run_id = 'r2'"
    ).fetchall()
    assert deleted == [(str(keys[3]),)]
    assert not result.complete_key_set and result.deleted_keys == 1
    assert int(result.watermark_to) > int(result.watermark_from)

    merge_watermark(erp, "r2", "Products")
    with client_for(sim) as client:
        quiet = land_table(client, erp, table, "r3", "incremental", read_state(erp, table))
    assert quiet.records_landed == 0 and quiet.deleted_keys == 0


def test_untracked_table_falls_back_to_modified_date(erp: Conn) -> None:
    with make_simulator(untracked_tables=frozenset({"Customers"})) as sim:
        table = get_table("Customers")
        with client_for(sim) as client:
            first = land_table(client, erp, table, "r1", "incremental", read_state(erp, table))
            assert first.strategy == "modified_date" and first.complete_key_set
            merge_watermark(erp, "r1", "Customers")
            old_key = min(sim.dataset.keys("Customers"))
            sim.dataset.update("Customers", old_key, {"Email": "changed@example.com"})
            second = land_table(client, erp, table, "r2", "incremental", read_state(erp, table))
        landed = set(landed_keys(erp, "Customers", "r2"))
        assert str(old_key) in landed
        # Only the lookback window is read again, not the whole table.
        assert second.records_landed < sim.dataset.count("Customers") / 2
        assert second.strategy == "modified_date" and not second.complete_key_set


def test_full_strategy_reads_everything_every_time(sim: SimulatorServer, erp: Conn) -> None:
    table = dataclasses.replace(get_table("Inventory"), strategy=Strategy.FULL)
    with client_for(sim) as client:
        land_table(client, erp, table, "r1", "incremental")
        merge_watermark(erp, "r1", "Inventory")
        result = land_table(client, erp, table, "r2", "incremental", read_state(erp, table))
    assert result.complete_key_set and result.strategy == "full"
    assert_exactly_once(erp, sim, "Inventory", "r2")


FAULTS = {
    "error_500_every_3rd": ("error_500", {"every": 3}),
    "error_503_burst": ("error_503", {"count": 4, "retry_after": 0}),
    "dropped_connections": ("drop_connection", {"every": 4}),
    "truncated_bodies": ("drop_connection", {"every": 5, "mode": "truncate"}),
    "licence_402_then_recovery": ("licence_burst", {"count": 3}),
    "session_expiry_mid_table": ("expire_sessions", {"after": 6}),
    "page_size_cap": ("page_cap", {"max": 97}),
}


@pytest.mark.faults
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_lose_and_duplicate_nothing(sim: SimulatorServer, erp: Conn, fault: str) -> None:
    kind, params = FAULTS[fault]
    sim.faults.set(kind, **params)
    with client_for(sim) as client:
        for name in ("Products", "OrderLines"):
            land_table(client, erp, get_table(name), "r1", "full")
    for name in ("Products", "OrderLines"):
        assert_exactly_once(erp, sim, name, "r1")
    stats = sim.stats.as_dict()
    if kind == "page_cap":  # served silently: shows as more, shorter pages than asked for
        assert stats["requests"] >= sim.dataset.count("OrderLines") / params["max"]
    elif kind == "expire_sessions":  # shows as a second login
        assert stats["logins"] == 2
    else:
        assert stats["faults_fired"], f"{fault} never fired: the test proves nothing"


def test_changes_while_paging_neither_lose_nor_repeat_records(sim: SimulatorServer, erp: Conn) -> None:
    table = get_table("OrderLines")
    before = set(sim.dataset.keys("OrderLines"))
    stop = threading.Event()
    deleted: set[int] = set()
    inserted: set[int] = set()
    sim.faults.set("slow", delay=0.01)

    def churn() -> None:
        keys = sorted(before)
        i = 0
        while not stop.is_set():
            changed = keys[(i * 37) % len(keys)]
            if changed not in deleted:
                sim.dataset.update("OrderLines", changed, {"Quantity": 3})
            victim = keys[(i * 101 + 13) % len(keys)]
            if victim not in deleted:
                sim.dataset.delete("OrderLines", victim)
                deleted.add(victim)
            inserted.add(sim.dataset.insert("OrderLines", {"OrderID": 1, "ProductID": 1, "Quantity": 1}))
            i += 1
            time.sleep(0.005)

    errors: list[BaseException] = []

    def guarded_churn() -> None:
        try:
            churn()
        except BaseException as exc:  # surfaced below: a dead churn thread would prove nothing
            errors.append(exc)

    worker = threading.Thread(target=guarded_churn)
    worker.start()
    try:
        with client_for(sim, page_size=50) as client:
            land_table(client, erp, table, "r1", "full")
    finally:
        stop.set()
        worker.join()
    keys = landed_keys(erp, "OrderLines", "r1")
    assert not errors
    assert len(deleted) > 10 and inserted, "the churn did not run"
    assert max(keys.values()) == 1, "a record landed twice"
    survivors = {str(k) for k in before - deleted}
    assert survivors <= set(keys), f"{len(survivors - set(keys))} records that always existed were missed"


def test_a_pool_of_three_holds_one_licence_across_tables_and_runs(erp_db_url: str, erp: Conn) -> None:
    with make_simulator(licences=3) as sim:
        store = PostgresSessionStore(erp_db_url, "legacy_4d_default")

        def land(args: tuple[str, str]) -> None:
            run_id, name = args
            with client_for(sim, store=store) as client, psycopg.connect(erp_db_url, autocommit=True) as conn:
                land_table(client, conn, get_table(name), run_id, "full")

        for run_id in ("r1", "r2"):
            with ThreadPoolExecutor(max_workers=3) as pool:  # three pool slots in parallel
                list(pool.map(land, [(run_id, t.name) for t in TABLES]))
        stats = sim.stats.as_dict()
        assert stats["402s"] == 0
        assert stats["sessions_created"] == 1 and stats["logins"] == 1
        for table in TABLES:
            assert_exactly_once(erp, sim, table.name, "r2")


def test_a_legacy_4d_version_lands_the_same_records(erp: Conn) -> None:
    """Quoted __TIMESTAMP, __SENT after __ENTITIES, no __DATACLASS/__GlobalStamp in envelopes."""
    with make_simulator(legacy_quirks=True, cookie_name="4DSID_LegacyERP") as sim:
        with client_for(sim) as client:
            for name in ("Products", "OrderLines"):
                result = land_table(client, erp, get_table(name), "r1", "full")
                assert result.watermark_to is not None  # found from the records' own stamps
        for name in ("Products", "OrderLines"):
            assert_exactly_once(erp, sim, name, "r1")
    stamp = erp.execute(
        "select payload ->> '__TIMESTAMP' from legacy_staging.products_raw limit 1"
    ).fetchone()[0]
    assert not stamp.startswith('"') and stamp.endswith("Z")


@pytest.mark.parametrize("stage", ["reader", "encoder"])
def test_a_failure_in_a_landing_thread_fails_the_table_and_lands_none_of_it(
    sim: SimulatorServer, erp: Conn, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are read and encoded in threads while the COPY writes: a failure there after some
    pages were written still fails the table, and its transaction lands nothing."""
    table = get_table("OrderLines")
    with client_for(sim) as client:
        if stage == "reader":
            real_pages = client.iter_by_key

            def failing_pages(*args: Any, **kwargs: Any) -> Any:
                for number, page in enumerate(real_pages(*args, **kwargs)):
                    if number == 4:
                        raise PagingError("4D sent OrderLineID 9 before OrderLineID 3, out of key order")
                    yield page

            monkeypatch.setattr(client, "iter_by_key", failing_pages)
        else:
            real_block = landing.copy_block
            calls = []

            def failing_block(*args: Any, **kwargs: Any) -> bytes:
                calls.append(1)
                if len(calls) == 5:
                    raise PagingError("cannot encode")
                return real_block(*args, **kwargs)

            monkeypatch.setattr(landing, "copy_block", failing_block)
        with pytest.raises(PagingError):
            land_table(client, erp, table, "r1", "full")
    assert not landed_keys(erp, "OrderLines", "r1")
    assert erp.execute("select count(*) from legacy_sync.landing_batch where run_id = 'r1'").fetchone() == (
        0,
    )
    assert not [t for t in threading.enumerate() if t.name in ("4d-page-reader", "copy-encoder")]
    # The same connection lands the table afterwards.
    with client_for(sim) as client:
        monkeypatch.undo()
        land_table(client, erp, table, "r1", "full")
    assert_exactly_once(erp, sim, "OrderLines", "r1")
