"""(1) the COPY ceiling and (2) extract+land through the hook's client and the simulator."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from bench.common import Sim, log, median
from legacy_sync import ledger
from legacy_sync.landing import land_table
from legacy_sync.registry import TABLES


def truncate_staging(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        ledger.apply_schema(conn)
        for table in TABLES:
            conn.execute(sql.SQL("truncate {}").format(sql.Identifier("legacy_staging", table.raw_table)))
        conn.execute("truncate legacy_staging.deleted_records_raw, legacy_sync.landing_batch")
        conn.execute("checkpoint")


def extract_land_once(sim: Sim, url: str, run_id: str) -> dict[str, Any]:
    """Every table, full mode: what the DAG's extract_and_land tasks do, one after the other."""
    per_table: dict[str, dict[str, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn, sim.client() as client:
        ledger.apply_schema(conn)
        started = time.perf_counter()
        for table in TABLES:
            t0 = time.perf_counter()
            result = land_table(client, conn, table, run_id, "full")
            seconds = time.perf_counter() - t0
            per_table[table.name] = {"records": result.records_landed, "seconds": seconds}
        total = time.perf_counter() - started
    records = sum(int(v["records"]) for v in per_table.values())
    return {"seconds": total, "records": records, "rows_per_s": records / total, "tables": per_table}


def measure_extract_land(sim: Sim, url: str, reps: int) -> dict[str, Any]:
    runs = []
    for rep in range(reps):
        truncate_staging(url)
        run = extract_land_once(sim, url, f"bench-el-{rep}")
        expected = sum(sim.counts.values())
        if run["records"] != expected:
            raise RuntimeError(f"extract+land landed {run['records']} records, the source has {expected}")
        log(
            f"extract+land #{rep + 1}: {run['records']:,} records in {run['seconds']:.1f}s "
            f"= {run['rows_per_s']:,.0f} records/s"
        )
        runs.append(run)
    best = sorted(runs, key=lambda r: r["rows_per_s"])[len(runs) // 2]
    return {
        "rows_per_s": median([r["rows_per_s"] for r in runs]),
        "seconds": median([r["seconds"] for r in runs]),
        "records": runs[0]["records"],
        "runs_rows_per_s": [round(r["rows_per_s"]) for r in runs],
        "tables": {
            name: {
                "records": best["tables"][name]["records"],
                "rows_per_s": median(
                    [r["tables"][name]["records"] / r["tables"][name]["seconds"] for r in runs]
                ),
            }
            for name in best["tables"]
        },
        "last_run_id": f"bench-el-{reps - 1}",
    }


PAGE_SIZE = 2000
"""The hook's page size: landing writes one COPY block per page."""


def load_landed_rows(url: str, run_id: str) -> dict[str, list[bytes]]:
    """The records (2) landed, back in memory as landing hands them to COPY: COPY text rows
    ``run_id, legacy_id, payload, row_hash``, one block of bytes per page of 2,000 records."""
    blocks: dict[str, list[bytes]] = {}
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for table in TABLES:
            query = sql.SQL(
                "copy (select run_id, legacy_id, payload::text, row_hash from {} where run_id = {}"
                " order by legacy_id) to stdout"
            ).format(sql.Identifier("legacy_staging", table.raw_table), sql.Literal(run_id))
            with cur.copy(query) as copy:
                text = b"".join(bytes(chunk) for chunk in copy)
            lines = text.splitlines(keepends=True)
            blocks[table.name] = [b"".join(lines[i : i + PAGE_SIZE]) for i in range(0, len(lines), PAGE_SIZE)]
    return blocks


def _records(blocks: list[bytes]) -> int:
    return sum(block.count(b"\n") for block in blocks)


def measure_ceiling(url: str, rows: dict[str, list[bytes]], reps: int) -> dict[str, Any]:
    """COPY of the same records from memory into identical staging tables (same columns, same index).

    Same write path as landing: one ``COPY ... FROM STDIN`` per table in its own transaction,
    one ``copy.write`` of a page's block of COPY text rows (landing.copy_block's format) per page:
    what PostgreSQL and psycopg can ingest with nothing to wait for.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema if not exists bench_ceiling")
        for table in TABLES:
            conn.execute(
                sql.SQL("drop table if exists {t}; create table {t} (like {s} including all)").format(
                    t=sql.Identifier("bench_ceiling", table.raw_table),
                    s=sql.Identifier("legacy_staging", table.raw_table),
                )
            )
    runs: list[dict[str, Any]] = []
    counts = {name: _records(blocks) for name, blocks in rows.items()}
    total_records = sum(counts.values())
    for rep in range(reps):
        with psycopg.connect(url, autocommit=True) as conn:
            for table in TABLES:
                conn.execute(sql.SQL("truncate {}").format(sql.Identifier("bench_ceiling", table.raw_table)))
            conn.execute("checkpoint")
            per_table: dict[str, float] = {}
            started = time.perf_counter()
            for table in TABLES:
                t0 = time.perf_counter()
                target = sql.Identifier("bench_ceiling", table.raw_table)
                with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy(
                        sql.SQL("copy {} (run_id, legacy_id, payload, row_hash) from stdin").format(target)
                    ) as copy,
                ):
                    for block in rows[table.name]:
                        copy.write(block)
                per_table[table.name] = time.perf_counter() - t0
            seconds = time.perf_counter() - started
        runs.append({"seconds": seconds, "tables": per_table})
        log(
            f"COPY ceiling #{rep + 1}: {total_records:,} records in {seconds:.1f}s "
            f"= {total_records / seconds:,.0f} records/s"
        )
    return {
        "rows_per_s": median([total_records / r["seconds"] for r in runs]),
        "seconds": median([r["seconds"] for r in runs]),
        "records": total_records,
        "runs_rows_per_s": [round(total_records / r["seconds"]) for r in runs],
        "tables": {
            t.name: {
                "records": counts[t.name],
                "rows_per_s": median([counts[t.name] / r["tables"][t.name] for r in runs]),
            }
            for t in TABLES
        },
    }
