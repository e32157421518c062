"""The planner's statistics on the erp tables (issue 15).

The first sync fills each erp table in one merge and the next models of the same run join
against it, so its statistics must be gathered right after that merge; a large backfill grows a
table past them and must do the same. An hourly run that changed a few rows must not: ANALYZE
samples up to 30,000 rows of the table whatever the merge wrote, which made every incremental
run cost more the larger the ERP (about a second per million-row table). PostgreSQL's autovacuum
refreshes statistics from there on its own threshold.

``pg_class.reltuples`` is what ANALYZE writes (exact on tables this small: it reads every page),
so it tells whether a run gathered statistics without waiting for the statistics collector.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from .sync_harness import FirstSyncs, SyncHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def sync(first_syncs: FirstSyncs) -> Iterator[SyncHarness]:
    with first_syncs.harness(scale=1500, seed=3) as harness:
        yield harness


def statistics(url: str) -> dict[str, tuple[float, int]]:
    """{erp table: (rows in its statistics, rows it holds)}."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select c.relname, c.reltuples from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'erp' and c.relkind = 'r'"
        ).fetchall()
        return {
            name: (reltuples, conn.execute(f"select count(*) from erp.{name}").fetchone()[0])  # type: ignore[index]
            for name, reltuples in tables
        }


def add_customers(sync: SyncHarness, count: int, tag: str) -> None:
    data = sync.dataset
    template = data.get("Customers", min(data.keys("Customers")))
    for n in range(count):
        data.insert("Customers", {**template, "CustomerID": None, "AccountNumber": f"AW-{tag}-{n}"})


def test_the_first_sync_leaves_every_erp_table_with_its_statistics(sync: SyncHarness) -> None:
    stats = statistics(sync.url)
    assert all(rows > 0 for _, rows in stats.values()), stats
    assert {t: s for t, s in stats.items() if s[0] != s[1]} == {}


def test_an_hourly_run_of_a_few_changes_leaves_statistics_to_autovacuum(sync: SyncHarness) -> None:
    before = statistics(sync.url)
    add_customers(sync, 3, "FEW")
    run = sync.run()
    assert sync.statuses(run)["Customers"] == "COMPLETED", sync.log(run)
    after = statistics(sync.url)
    assert after["customers"][1] == before["customers"][1] + 3
    assert after["customers"][0] == before["customers"][0], "a merge of 3 rows re-gathered statistics"


def test_a_backfill_that_grows_a_table_gathers_its_statistics_again(sync: SyncHarness) -> None:
    customers = statistics(sync.url)["customers"][1]
    add_customers(sync, customers // 2, "BACKFILL")
    run = sync.run()
    assert sync.statuses(run)["Customers"] == "COMPLETED", sync.log(run)
    reltuples, rows = statistics(sync.url)["customers"]
    assert rows == customers + customers // 2
    assert reltuples == rows


def test_the_runs_scratch_tables_are_analyzed_and_never_autovacuumed(sync: SyncHarness) -> None:
    """legacy_transform is rebuilt by every run: vacuuming it after a full sync is work the next
    run throws away, done beside that run."""
    with psycopg.connect(sync.url) as conn:
        tables = conn.execute(
            "select c.relname, c.reloptions, c.reltuples from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'legacy_transform' and c.relkind = 'r'"
        ).fetchall()
    assert len(tables) > 20
    assert [name for name, options, _ in tables if "autovacuum_enabled=false" not in (options or [])] == []
    assert [name for name, _, reltuples in tables if reltuples < 0] == []  # all analyzed
