"""(7) dlt's ``rest_api`` source loading the same seven tables from the same simulator.

dlt is configured as a user would for 4D's REST protocol: a session cookie from
``POST /rest/$directory/login`` sent as a header, offset paging with ``$skip``/``$top`` (sorted
by the key, so paging is stable) and ``__COUNT`` as the total, ``__ENTITIES`` as the data
selector, ``$attributes`` as the registry's fields, the page size the hook uses (2000). Loaded
twice: with dlt's default loader file format for PostgreSQL (``insert_values``: multi-row INSERT
statements) and with its fastest, ``csv`` (dlt writes CSV files, the postgres loader sends them
with ``COPY ... FROM STDIN``). Row counts are checked against 4D.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import psycopg

from bench.common import SIM_USER, WORK, Sim, log, median
from legacy_sync.registry import TABLES

PAGE_SIZE = 2000


def _login(sim: Sim) -> tuple[str, str]:
    response = httpx.post(
        f"{sim.base_url}/rest/$directory/login",
        headers={"username-4D": SIM_USER, "password-4D": sim.password, "session-4D-length": "120"},
    )
    response.raise_for_status()
    name, value = next(iter(response.cookies.items()))
    return name, value


def _dlt_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url
    # dlt insists on a password; the embedded server trusts local connections and ignores it.
    netloc = f"{quote(parts.username or 'postgres')}:unused@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


FORMATS = ("insert_values", "csv")


def run_once(sim: Sim, url: str, rep: int, file_format: str = "insert_values") -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    name, value = _login(sim)
    dataset = f"dlt_bench_{file_format}_{rep}"
    config: dict[str, Any] = {
        "client": {
            "base_url": f"{sim.base_url}/rest/",
            "headers": {"Cookie": f"{name}={value}", "Accept": "application/json"},
            "paginator": {
                "type": "offset",
                "limit": PAGE_SIZE,
                "offset_param": "$skip",
                "limit_param": "$top",
                "total_path": "__COUNT",
            },
        },
        "resource_defaults": {"write_disposition": "replace"},
        "resources": [
            {
                "name": table.snake_name,
                "endpoint": {
                    "path": table.name,
                    "data_selector": "__ENTITIES",
                    "params": {
                        "$orderby": f'"{table.key} asc"',
                        "$attributes": ",".join(f.name for f in table.fields),
                    },
                },
            }
            for table in TABLES
        ],
    }
    pipelines_dir = WORK / "dlt"
    shutil.rmtree(pipelines_dir, ignore_errors=True)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_4d_{file_format}_{rep}",
        destination=dlt.destinations.postgres(credentials=_dlt_credentials(url)),
        dataset_name=dataset,
        pipelines_dir=str(pipelines_dir),
        progress=None,
    )
    started = time.perf_counter()
    pipeline.run(rest_api_source(config), loader_file_format=file_format)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    counts: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            row = conn.execute(f'select count(*) from "{dataset}"."{table.snake_name}"').fetchone()
            counts[table.name] = int(row[0]) if row else 0
        conn.execute(f'drop schema "{dataset}" cascade')
        conn.commit()
    if counts != sim.counts:
        raise RuntimeError(f"dlt loaded {counts}, 4D has {sim.counts}")
    records = sum(counts.values())
    return {"seconds": seconds, "records": records, "rows_per_s": records / seconds}


def measure(sim: Sim, url: str, reps: int) -> dict[str, Any]:
    """Both loader file formats; the top-level figures are the fastest format's (the baseline a
    user tuning dlt would pick)."""
    by_format: dict[str, dict[str, Any]] = {}
    for file_format in FORMATS:
        runs = []
        for rep in range(reps):
            run = run_once(sim, url, rep, file_format)
            log(
                f"dlt rest_api ({file_format}) #{rep + 1}: {run['records']:,} records in "
                f"{run['seconds']:.1f}s = {run['rows_per_s']:,.0f} records/s"
            )
            runs.append(run)
        by_format[file_format] = {
            "rows_per_s": median([r["rows_per_s"] for r in runs]),
            "seconds": median([r["seconds"] for r in runs]),
            "records": runs[0]["records"],
            "runs_rows_per_s": [round(r["rows_per_s"]) for r in runs],
        }
    fastest = max(by_format, key=lambda f: by_format[f]["rows_per_s"])
    return {
        **by_format[fastest],
        "loader_file_format": fastest,
        "formats": by_format,
    }
