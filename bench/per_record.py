"""(6) the original design's way: one transaction per record, an upsert of the mapped row.

A faithful re-implementation of the pattern (without its ORM, which would only be slower):
records are fetched the same way (the 4D client, keyset pages), each one is mapped in Python
(4D dates and times, numbers, a row hash) and written with ``insert ... on conflict do update``
in its own transaction (autocommit: one statement, one commit).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from decimal import Decimal
from typing import Any

import orjson
import psycopg

from bench.common import Sim, log, median
from legacy_sync.registry import get_table

DDL = """
create schema if not exists bench_original;
drop table if exists bench_original.order_lines;
create table bench_original.order_lines (
    legacy_id bigint primary key,
    order_id bigint,
    product_id bigint,
    quantity integer,
    unit_price numeric(19, 4),
    discount_rate numeric(9, 4),
    line_total numeric(19, 6),
    modified_at timestamp,
    row_hash text not null,
    synced_at timestamptz not null default now()
)
"""

UPSERT = """
insert into bench_original.order_lines
    (legacy_id, order_id, product_id, quantity, unit_price, discount_rate, line_total, modified_at, row_hash)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
on conflict (legacy_id) do update set
    order_id = excluded.order_id, product_id = excluded.product_id, quantity = excluded.quantity,
    unit_price = excluded.unit_price, discount_rate = excluded.discount_rate,
    line_total = excluded.line_total, modified_at = excluded.modified_at,
    row_hash = excluded.row_hash, synced_at = now()
"""


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or value in ("0!0!0", ""):
        return None
    day, month, year = (int(p) for p in value.split("!"))
    return dt.date(year, month, day)


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def map_record(e: dict[str, Any]) -> tuple[Any, ...]:
    modified = _date(e.get("ModifiedDate"))
    at = (
        dt.datetime.combine(modified, dt.time()) + dt.timedelta(milliseconds=int(e.get("ModifiedTime") or 0))
        if modified
        else None
    )
    business = {k: v for k, v in e.items() if not k.startswith("__")}
    row_hash = hashlib.md5(
        orjson.dumps(business, option=orjson.OPT_SORT_KEYS), usedforsecurity=False
    ).hexdigest()
    return (
        int(e.get("OrderLineID") or e["__KEY"]),
        e.get("OrderID"),
        e.get("ProductID"),
        e.get("Quantity"),
        _money(e.get("UnitPrice")),
        _money(e.get("UnitPriceDiscount")),
        _money(e.get("LineTotal")),
        at,
        row_hash,
    )


def run_once(sim: Sim, url: str, sample: int) -> dict[str, Any]:
    table = get_table("OrderLines")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL)
    with psycopg.connect(url, autocommit=True) as conn, sim.client() as client:
        done = 0
        started = time.perf_counter()
        for page in client.iter_by_key(table.name, table.key, attributes=tuple(f.name for f in table.fields)):
            for entity in page.entities:
                conn.execute(UPSERT, map_record(entity))  # autocommit: one transaction per record
                done += 1
                if done >= sample:
                    break
            if done >= sample:
                break
        seconds = time.perf_counter() - started
    return {"records": done, "seconds": seconds, "rows_per_s": done / seconds}


def commit_latency(url: str, commits: int = 300) -> float:
    """Median seconds of one durable commit of a one-row insert on this server and disk: the floor
    under each record of this baseline, which is why its figure follows the disk's flush latency
    (about 0.4 ms on an idle disk here, several ms when other suites write)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema if not exists bench_original")
        conn.execute("create table if not exists bench_original.commit_probe (n integer)")
        seconds = []
        for n in range(commits):
            started = time.perf_counter()
            conn.execute("insert into bench_original.commit_probe values (%s)", (n,))
            seconds.append(time.perf_counter() - started)
        conn.execute("drop table bench_original.commit_probe")
    return median(seconds)


def measure(sim: Sim, url: str, sample: int, reps: int) -> dict[str, Any]:
    commit_ms = commit_latency(url) * 1000
    log(f"one durable commit of a one-row insert: {commit_ms:.2f} ms (median)")
    runs = []
    for rep in range(reps):
        run = run_once(sim, url, sample)
        log(
            f"one transaction per record #{rep + 1}: {run['records']:,} records in {run['seconds']:.1f}s "
            f"= {run['rows_per_s']:,.0f} records/s"
        )
        runs.append(run)
    return {
        "rows_per_s": median([r["rows_per_s"] for r in runs]),
        "sample": sample,
        "runs_rows_per_s": [round(r["rows_per_s"]) for r in runs],
        "commit_ms": commit_ms,
    }
