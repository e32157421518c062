"""The sync monitor's FastAPI app, mounted by Airflow's api-server under ``/legacy-sync``.

Read-only by construction: only ``GET`` routes, a read-only database session (see
:mod:`legacy_sync.monitor.queries`), nothing that writes. Every route requires a signed-in Airflow
user allowed to read the runs of the sync DAG (Airflow's own auth manager decides; the same JWT
the UI keeps in its ``_token`` cookie, or a ``Bearer`` token for API clients).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from legacy_sync.monitor import charts, queries

log = logging.getLogger(__name__)

URL_PREFIX = "/legacy-sync"
SYNC_DAG_IDS = ("legacy_erp_sync", "legacy_erp_full_sync")
# Whoever may read the runs of the sync DAG may read what those runs did.
AUTHZ_DAG_ID = "legacy_erp_sync"
CHART_RUNS = 20

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


# -- formatting --------------------------------------------------------------------------------------
def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{value.total_seconds():.1f} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


_templates.filters.update(when=_when, duration=_duration, pretty_json=_pretty_json, number="{:,}".format)


# -- request helpers ---------------------------------------------------------------------------------
def _conninfo() -> str:
    """The ERP database, from Airflow connection ``erp_postgres_default`` (the only copy of the secret).

    Inside the api-server ``airflow.sdk.BaseHook.get_connection`` reads Airflow's configured secrets
    backends: environment variables (``AIRFLOW_CONN_*``) and the metadata database (connections made
    in the UI), so the monitor needs no credentials of its own.
    """
    from legacy_sync.erp_db import conninfo_from_airflow

    return conninfo_from_airflow()


class Links:
    """URLs of this app and of Airflow, relative to where the api-server mounted us."""

    def __init__(self, request: Request) -> None:
        self.root = request.scope.get("root_path", "").rstrip("/")  # e.g. /legacy-sync
        self.airflow = self.root.removesuffix(URL_PREFIX)  # Airflow's own root (a sub-path or "")
        self.query = dict(request.query_params)

    def home(self, **params: Any) -> str:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return f"{self.root}/" + (f"?{urlencode(clean)}" if clean else "")

    def filtered(self, **changes: Any) -> str:
        """The list page with the current filters, some changed (``None`` removes one)."""
        params = {**self.query, **changes}
        if "page" not in changes:
            params.pop("page", None)
        return self.home(**params)

    def page(self, number: int) -> str:
        params = {**self.query, "page": number}
        return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})

    def log(self, log_id: int) -> str:
        return f"{self.root}/logs/{log_id}"

    def errors_csv(self, log_id: int) -> str:
        return f"{self.root}/logs/{log_id}/errors.csv"

    def raw_record(self, error_id: int) -> str:
        return f"{self.root}/errors/{error_id}/record.json"

    def run(self, run_id: str) -> str:
        return f"{self.root}/runs/{quote(run_id, safe='')}"

    def airflow_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def _render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(
        links=Links(request), statuses=queries.STATUSES, **context
    )
    return HTMLResponse(html, status_code=status_code)


def _dag_id_of_run(run_id: str) -> str | None:
    """Which sync DAG a run belongs to (sync_log keeps only the run id), from Airflow's metadata."""
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return session.scalar(
                select(DagRun.dag_id).where(DagRun.run_id == run_id, DagRun.dag_id.in_(SYNC_DAG_IDS)).limit(1)
            )
    except Exception:  # the link is a convenience: the page still works without it
        log.warning("could not look up the DAG of run %s", run_id, exc_info=True)
        return None


# -- app ---------------------------------------------------------------------------------------------
def _authorized_reader() -> Any:
    """Airflow's dependency: a signed-in user who may read runs of the sync DAG (else 401/403)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=AUTHZ_DAG_ID))


async def _login_redirect(request: Request, exc: Exception) -> Response:
    """Browsers without a session go to Airflow's login page and come back; API clients get 401."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    return await http_exception_handler(request, exc)


def create_app() -> FastAPI:
    """The monitor app; every route is behind Airflow's auth."""
    app = FastAPI(
        title="Legacy sync monitor",
        dependencies=[_authorized_reader()],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_exception_handler(HTTPException, _login_redirect)

    @app.exception_handler(psycopg.errors.UndefinedTable)
    async def _no_schema(request: Request, exc: Exception) -> Response:
        return _render(
            request,
            "message.html",
            title="No sync yet",
            message="The ERP database has no legacy_sync tables yet: no sync has run.",
        )

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: Exception) -> Response:
        log.warning("sync monitor cannot reach the ERP database: %s", exc)
        return _render(
            request,
            "message.html",
            status_code=503,
            title="ERP database unreachable",
            message=f"The monitor could not read the ERP database: {exc}",
        )

    @app.get("/", response_class=HTMLResponse, name="logs")
    def logs(
        request: Request,
        status: str | None = None,
        table: str | None = None,
        run_id: str | None = None,
        q: str | None = None,
        page: int = Query(1, ge=1),
        per_page: int = Query(50, ge=1, le=queries.MAX_PER_PAGE),
    ) -> HTMLResponse:
        try:
            flt = queries.LogFilter(
                status=status or None,
                table=table or None,
                run_id=run_id or None,
                search=q or None,
                page=page,
                per_page=per_page,
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        with queries.read_only(_conninfo()) as conn:
            result = queries.list_logs(conn, flt)
            tables = queries.table_names(conn)
            runs = queries.recent_runs(conn, CHART_RUNS)
        return _render(
            request,
            "logs.html",
            page=result,
            flt=flt,
            tables=tables,
            runs=runs,
            records_chart=charts.records_per_table(runs),
            rejects_chart=charts.rejects_over_time(runs),
        )

    @app.get("/logs/{log_id}", response_class=HTMLResponse, name="log_detail")
    def log_detail(
        request: Request,
        log_id: int,
        q: str | None = None,
        page: int = Query(1, ge=1),
        per_page: int = Query(50, ge=1, le=queries.MAX_PER_PAGE),
    ) -> HTMLResponse:
        with queries.read_only(_conninfo()) as conn:
            entry = queries.get_log(conn, log_id)
            if entry is None:
                raise HTTPException(404, f"no sync log {log_id}")
            errors = queries.log_errors(conn, log_id, q or None, page, per_page)
        return _render(request, "log_detail.html", entry=entry, errors=errors, q=q or "")

    @app.get("/logs/{log_id}/errors.csv", name="errors_csv")
    def errors_csv(log_id: int) -> StreamingResponse:
        conninfo = _conninfo()
        with queries.read_only(conninfo) as conn:
            entry = queries.get_log(conn, log_id)
        if entry is None:
            raise HTTPException(404, f"no sync log {log_id}")
        filename = f"sync-errors-{entry['table_name']}-{log_id}.csv"
        return StreamingResponse(
            _csv_rows(conninfo, entry),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.get("/errors/{error_id}/record.json", name="raw_record")
    def raw_record(error_id: int) -> JSONResponse:
        with queries.read_only(_conninfo()) as conn:
            row = conn.execute(
                "select record_data from legacy_sync.sync_error where id = %s", (error_id,)
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"no sync error {error_id}")
        return JSONResponse(row["record_data"])

    @app.get("/runs/{run_id:path}", response_class=HTMLResponse, name="run")
    def run(request: Request, run_id: str) -> HTMLResponse:
        with queries.read_only(_conninfo()) as conn:
            tables = queries.run_logs(conn, run_id)
        if not tables:
            # Also reached from the "Sync log" tab of other DAGs' runs: say so, in the page.
            return _render(
                request,
                "message.html",
                status_code=404,
                title="No sync log for this run",
                message=f"Run {run_id} wrote nothing to legacy_sync.sync_log.",
            )
        totals = {
            key: sum(int(t[key]) for t in tables)
            for key in (
                "records_processed",
                "records_created",
                "records_updated",
                "records_unchanged",
                "records_deleted",
                "records_failed",
            )
        }
        starts = [t["start_time"] for t in tables if t["start_time"]]
        ends = [t["end_time"] for t in tables if t["end_time"]]
        return _render(
            request,
            "run.html",
            run_id=run_id,
            tables=tables,
            totals=totals,
            dag_id=_dag_id_of_run(run_id),
            start=min(starts, default=None),
            end=max(ends, default=None),
        )

    return app


# Characters a spreadsheet starts a formula (or DDE call) with, ASCII and full-width (Excel and
# LibreOffice treat U+FF1D FULLWIDTH EQUALS SIGN like "="). Spreadsheets skip leading whitespace
# before they look, so the check does too.
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_CONTROL_START = ("\t", "\r", "\n")


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a formula-like cell gets a leading quote (CSV injection).

    Formula-like: its first character after any whitespace is ``=``, ``+``, ``-``, ``@`` or a
    full-width form of one, or it starts with a tab, CR or LF. Plain numbers (``-12.5``) stay numbers.
    """
    text = "" if value is None else str(value)
    stripped = text.lstrip()
    risky = text.startswith(_CONTROL_START) or (stripped[:1] in _FORMULA_START)
    if risky and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    # Only plain ASCII numbers: float() also accepts surrounding whitespace and full-width digits.
    if text != text.strip() or not text.isascii():
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_rows(conninfo: str, entry: dict[str, Any]) -> Iterator[bytes]:
    """The CSV body, streamed row by row from a server-side cursor (memory bounded by one row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        data = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        return data

    buffer.write("\ufeff")  # BOM: spreadsheet programs then read UTF-8 correctly
    writer.writerow(["table", "run_id", "record_id", "reasons", "rejected_at", "record_data"])
    yield flush()
    with queries.read_only(conninfo) as conn:
        for row in queries.iter_errors(conn, entry["id"]):
            writer.writerow(
                [
                    _cell(entry["table_name"]),
                    _cell(entry["run_id"]),
                    _cell(row["record_id"]),
                    _cell(row["error_message"]),
                    _when(row["created_at"]),
                    _cell(row["record_data"]),
                ]
            )
            if buffer.tell() > 64_000:
                yield flush()
    yield flush()
