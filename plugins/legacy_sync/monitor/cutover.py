"""The monitor's *Cutover* page (issue 18): readiness and its trend, freshness, schema drift,
coverage; and the CSV of a diff's differing keys.

Same rules as the rest of the monitor: ``GET`` only, its own SELECT-only role (the tables it reads
are granted by ``ledger.grant_monitor_access``: ``erp_db.MONITOR_TABLES``), read-only short
transactions, bound parameters, values escaped. It shows record keys, column names and rejection
reasons, never raw 4D data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from html import escape
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.requests import Request

from legacy_sync import freshness

TREND_RUNS = 20
DRIFT_ROWS = 100
Connect = Callable[[], AbstractContextManager[psycopg.Connection[dict[str, Any]]]]


# -- queries ----------------------------------------------------------------------------------------


@dataclass
class DiffPoint:
    """One diff run in the trend: overall readiness and per table."""

    diff_id: str
    finished: dt.datetime
    readiness: float | None
    status: str
    tables: dict[str, float | None] = field(default_factory=dict)


def diff_trend(conn: psycopg.Connection[Any], limit: int = TREND_RUNS) -> list[DiffPoint]:
    """The last ``limit`` finished diffs, oldest first."""
    rows = conn.execute(
        """
        with runs as (
            select diff_id, finished_at, readiness, status from legacy_sync.diff_run
            where finished_at is not null order by finished_at desc limit %s
        )
        select runs.diff_id, runs.finished_at, runs.readiness, runs.status, t.table_name,
            t.readiness as table_readiness
        from runs left join legacy_sync.diff_table as t on t.diff_id = runs.diff_id
        order by runs.finished_at, runs.diff_id, t.table_name
        """,
        (limit,),
    ).fetchall()
    points: dict[str, DiffPoint] = {}
    for row in rows:
        readiness = float(row["readiness"]) if row["readiness"] is not None else None
        point = points.setdefault(
            row["diff_id"], DiffPoint(row["diff_id"], row["finished_at"], readiness, row["status"])
        )
        if row["table_name"]:
            value = row["table_readiness"]
            point.tables[row["table_name"]] = float(value) if value is not None else None
    return list(points.values())


def diff_detail(conn: psycopg.Connection[Any], diff_id: str | None) -> dict[str, Any] | None:
    """One diff run (the latest finished when ``diff_id`` is None) with its tables."""
    if diff_id is None:
        run = conn.execute(
            "select * from legacy_sync.diff_run where finished_at is not null"
            " order by finished_at desc limit 1"
        ).fetchone()
    else:
        run = conn.execute("select * from legacy_sync.diff_run where diff_id = %s", (diff_id,)).fetchone()
    if run is None:
        return None
    run["tables_detail"] = conn.execute(
        "select * from legacy_sync.diff_table where diff_id = %s order by table_name", (run["diff_id"],)
    ).fetchall()
    return dict(run)


def diff_keys_batch(
    conn: psycopg.Connection[Any], diff_id: str, after: tuple[str, int, str] | None, limit: int
) -> list[dict[str, Any]]:
    """The next ``limit`` keys of a diff that are not identical (keyset: table, length, key)."""
    where = "diff_id = %s"
    params: list[Any] = [diff_id]
    if after is not None:
        where += " and (table_name, length(legacy_id), legacy_id) > (%s, %s, %s)"
        params += list(after)
    return conn.execute(
        f"select table_name, legacy_id, status, columns, reason from legacy_sync.diff_key where {where}"
        " order by table_name, length(legacy_id), legacy_id limit %s",
        [*params, limit],
    ).fetchall()


def drift_rows(conn: psycopg.Connection[Any], limit: int = DRIFT_ROWS) -> list[dict[str, Any]]:
    return conn.execute(
        "select id, run_id, table_name, attribute, change, severity, policy, status, message, detected_at,"
        " decided_by, decided_at from legacy_sync.schema_drift order by id desc limit %s",
        (limit,),
    ).fetchall()


def latest_coverage(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    return conn.execute(
        "select id, source, taken_at, complete, report from legacy_sync.coverage_report"
        " order by id desc limit 1"
    ).fetchone()


def freshness_rows(conn: psycopg.Connection[Any], now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Every registry table's age against its limit, and since when it has been alerted stale."""
    now = now or dt.datetime.now(dt.UTC)
    ages = freshness.ages(conn.execute(freshness.LAST_SUCCESS_SQL).fetchall(), now)
    alerts = {
        r["table_name"]: r["detected_at"]
        for r in conn.execute(
            "select table_name, detected_at from legacy_sync.freshness_alert where recovered_at is null"
        )
    }
    return [
        {
            "table": a.table,
            "last_success": a.last_success,
            "age": a.age,
            "limit": a.limit,
            "stale": a.stale,
            "alerted_since": alerts.get(a.table),
            "age_text": freshness._span(a.age) if a.age is not None else "—",
            "limit_text": freshness._span(a.limit),
        }
        for a in ages
    ]


# -- the trend chart ------------------------------------------------------------------------------

# Okabe-Ito, as in charts.py; overall is the thick dark line.
_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#999999")
_FONT = "font-family='system-ui, sans-serif' font-size='11'"


def readiness_trend(
    points: list[DiffPoint], threshold: float | None, width: int = 760, height: int = 240
) -> str:
    """Readiness per diff run (overall and per table), 0-100 %, the threshold dashed."""
    if not points:
        return "<p class='empty'>No legacy-vs-ERP diff yet: trigger the legacy_erp_diff DAG.</p>"
    left, right, top, bottom = 44, 150, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for p in points for v in [p.readiness, *p.tables.values()] if v is not None]
    floor = min(0.9, (min(values) if values else 1.0))
    floor = max(0.0, int(floor * 10) / 10)  # a scale that shows the last percent where it matters

    def y_of(value: float) -> float:
        return top + plot_h * (1 - (value - floor) / (1 - floor or 1))

    step = plot_w / max(len(points) - 1, 1)

    def x_of(i: int) -> float:
        return left + (i * step if len(points) > 1 else plot_w / 2)

    last = points[-1]
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='100%' role='img'"
        f" aria-label='Readiness over the last {len(points)} diffs: now "
        f"{'—' if last.readiness is None else f'{100 * last.readiness:.2f} %'}'>"
    ]
    for tick in sorted({floor, (floor + 1) / 2, 1.0}):
        y = y_of(tick)
        out.append(f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#eee'/>")
        out.append(
            f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end' {_FONT} fill='#666'>"
            f"{100 * tick:.0f} %</text>"
        )
    if threshold is not None and floor <= threshold <= 1:
        y = y_of(threshold)
        out.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#b00020'"
            " stroke-dasharray='5 4'/>"
        )
    tables = sorted({t for p in points for t in p.tables})
    series = [
        (t, _COLOURS[i % len(_COLOURS)], 1.5, [p.tables.get(t) for p in points]) for i, t in enumerate(tables)
    ]
    series.append(("overall", "#1a1a1a", 3.0, [p.readiness for p in points]))
    for n, (name, colour, width_px, values_of) in enumerate(series):
        coords = [(x_of(i), y_of(v)) for i, v in enumerate(values_of) if v is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            out.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='{width_px}'/>")
        for i, v in enumerate(values_of):
            if v is None:
                continue
            tip = escape(f"{name} · {points[i].diff_id}\n{100 * v:.2f} % identical")
            out.append(
                f"<circle cx='{x_of(i):.1f}' cy='{y_of(v):.1f}' r='{width_px + 1}' fill='{colour}'>"
                f"<title>{tip}</title></circle>"
            )
        ly = top + 12 + 15 * n
        out.append(f"<rect x='{left + plot_w + 14}' y='{ly - 9}' width='10' height='10' fill='{colour}'/>")
        out.append(f"<text x='{left + plot_w + 28}' y='{ly}' {_FONT}>{escape(name)}</text>")
    for i in sorted({0, len(points) - 1}):
        out.append(
            f"<text x='{x_of(i):.1f}' y='{height - 10}' text-anchor='middle' {_FONT} fill='#666'>"
            f"{points[i].finished.astimezone(dt.UTC):%d %b %H:%M}</text>"
        )
    out.append("</svg>")
    return "".join(out)


# -- routes -----------------------------------------------------------------------------------------


def add_routes(
    app: FastAPI,
    render: Callable[..., HTMLResponse],
    connect: Connect,
    cell: Callable[[Any], str],
    batch: int = 500,
) -> None:
    """The cutover page and its CSV, on the monitor's app (same auth, same read-only connections)."""

    @app.get("/cutover", response_class=HTMLResponse, name="cutover")
    def cutover(request: Request, diff: str | None = None) -> HTMLResponse:
        with connect() as conn:
            detail = diff_detail(conn, diff or None)
            if diff and detail is None:
                raise HTTPException(404, f"no diff {diff}")
            trend = diff_trend(conn)
            fresh = freshness_rows(conn)
            drift = drift_rows(conn)
            coverage = latest_coverage(conn)
        threshold = float(detail["threshold"]) if detail else None
        return render(
            request,
            "cutover.html",
            detail=detail,
            trend=trend,
            trend_chart=readiness_trend(trend, threshold),
            freshness=fresh,
            stale=[f for f in fresh if f["stale"]],
            drift=drift,
            pending=[d for d in drift if d["status"] == "PENDING"],
            coverage=coverage,
        )

    @app.get("/cutover/diffs/{diff_id}/keys.csv", name="diff_keys_csv")
    def diff_keys_csv(diff_id: str) -> StreamingResponse:
        with connect() as conn:
            if diff_detail(conn, diff_id) is None:
                raise HTTPException(404, f"no diff {diff_id}")

        def rows() -> Iterator[bytes]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            buffer.write("\ufeff")
            writer.writerow(["table", "legacy_id", "status", "columns", "reason"])
            after: tuple[str, int, str] | None = None
            while True:
                with connect() as conn:  # one short transaction per batch, closed before sending
                    found = diff_keys_batch(conn, diff_id, after, batch)
                for r in found:
                    writer.writerow(
                        [
                            cell(r["table_name"]),
                            cell(r["legacy_id"]),
                            r["status"],
                            " ".join(r["columns"]),
                            cell(r["reason"]),
                        ]
                    )
                data = buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
                yield data
                if len(found) < batch:
                    return
                last = found[-1]
                after = (last["table_name"], len(last["legacy_id"]), last["legacy_id"])

        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in diff_id)
        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="diff-keys-{safe}.csv"'},
        )
