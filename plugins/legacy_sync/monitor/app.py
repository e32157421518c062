"""The sync monitor's FastAPI app, mounted by Airflow's api-server under ``/legacy-sync``.

Read-only by construction: only ``GET`` routes, its own SELECT-only database role (connection
``erp_postgres_monitor``, checked on every connection) in read-only sessions (see
:mod:`legacy_sync.monitor.queries`), nothing that writes.

Who sees what is Airflow's auth manager's decision (the same JWT the UI keeps in its ``_token``
cookie, or a ``Bearer`` token for API clients):

- every route needs permission to read the runs (``GET`` on ``DagAccessEntity.RUN``) of *both*
  sync DAGs: ``sync_log`` rows carry the run id, not the DAG, so the monitor cannot show one DAG's
  runs apart from the other's;
- raw 4D records (customer data) need permission to change those runs (``PUT`` on
  ``DagAccessEntity.RUN``, both DAGs): the people who operate the sync (clear, mark, replay). Others
  see record keys and rejection reasons only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode

import jinja2
import psycopg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from legacy_sync.contracts import MONITOR_CONN_ID, MONITOR_URL_PREFIX, SYNC_DAG_IDS
from legacy_sync.monitor import charts, queries

log = logging.getLogger(__name__)

# Whoever may read the runs of both sync DAGs may read what those runs did (counts, keys, reasons).
READ_METHOD: Final = "GET"
# Raw 4D records hold customer data: only for those who may change the sync DAGs' runs.
RAW_RECORDS_METHOD: Final = "PUT"
CHART_RUNS = 20
UNAVAILABLE = (
    "The monitor cannot read the ERP database right now. The Airflow api-server's log says why; "
    "try again later or ask your Airflow administrator."
)

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
class MonitorUnavailable(RuntimeError):
    """The monitor cannot serve: no connection of its own, or a role that may do too much."""


def _conninfo() -> str:
    """The ERP database as the monitor's own role: Airflow connection ``erp_postgres_monitor``.

    Inside the api-server ``airflow.sdk.BaseHook.get_connection`` reads Airflow's configured secrets
    backends: environment variables (``AIRFLOW_CONN_*``) and the metadata database (connections made
    in the UI). There is no fallback to the sync's read-write ``erp_postgres_default``.
    """
    from legacy_sync.erp_db import conninfo_from_airflow

    try:
        return conninfo_from_airflow(MONITOR_CONN_ID, application_name="legacy-erp-sync-monitor")
    except Exception as exc:  # AirflowNotFoundException and friends
        raise MonitorUnavailable(
            f"connection {MONITOR_CONN_ID} is not usable ({type(exc).__name__}: {exc}); create it with the "
            "monitor's SELECT-only role (docs/deployment.md)"
        ) from exc


def _connect(conninfo: str) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
    """A read-only session as a role that can do nothing but read the sync log (else refused)."""
    return _GuardedConnection(conninfo)


class _GuardedConnection:
    def __init__(self, conninfo: str) -> None:
        self._cm = queries.read_only(conninfo)

    def __enter__(self) -> psycopg.Connection[dict[str, Any]]:
        conn = self._cm.__enter__()
        try:
            queries.check_select_only(conn)
        except BaseException as exc:
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return conn

    def __exit__(self, *exc: Any) -> bool | None:
        return self._cm.__exit__(*exc)


class Links:
    """URLs of this app and of Airflow, relative to where the api-server mounted us."""

    def __init__(self, request: Request) -> None:
        self.root = request.scope.get("root_path", "").rstrip("/")  # e.g. /legacy-sync
        self.airflow = self.root.removesuffix(MONITOR_URL_PREFIX)  # Airflow's own root (a sub-path or "")
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
    nonce = getattr(request.state, "csp_nonce", None) or secrets.token_urlsafe(16)
    html = _templates.get_template(template).render(
        links=Links(request), statuses=queries.STATUSES, csp_nonce=nonce, **context
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


# -- security --------------------------------------------------------------------------------------
def _require_on_sync_dags(method: Literal["GET", "PUT"]) -> list[Any]:
    """Airflow's dependencies: a signed-in user allowed ``method`` on the runs of every sync DAG."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return [
        Depends(requires_access_dag(method, DagAccessEntity.RUN, param_dag_id=dag_id))
        for dag_id in SYNC_DAG_IDS
    ]


def _may_see_raw_records(user: Any) -> bool:
    """Whether the auth manager lets ``user`` change the runs of every sync DAG (see module doc)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    manager = get_auth_manager()
    return all(
        manager.is_authorized_dag(
            method=RAW_RECORDS_METHOD,
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
            user=user,
        )
        for dag_id in SYNC_DAG_IDS
    )


def _content_security_policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "img-src 'self' data:",
            "form-action 'self'",
            "base-uri 'none'",
            # Airflow's UI shows the monitor in a frame of the same origin; no other site may.
            "frame-ancestors 'self'",
        ]
    )


class SecurityHeaders:
    """ASGI middleware: security headers on every answer, and a fresh CSP nonce per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        extra = [
            (b"content-security-policy", _content_security_policy(nonce).encode()),
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            # Pages and downloads may hold customer data: no copies in shared caches or history.
            (b"cache-control", b"no-store"),
        ]

        ours = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                message["headers"] = [*kept, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _login_redirect(request: Request, exc: Exception) -> Response:
    """Browsers without a session go to Airflow's login page and come back; API clients get 401."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    return await http_exception_handler(request, exc)


# -- routes (every one behind the auth that create_app puts on the whole app) ----------------------
router = APIRouter()


def _require_raw_record_access(request: Request) -> None:
    """Raw 4D records hold customer data: only for those who may change the sync DAGs' runs."""
    if not _may_see_raw_records(request.state.user):
        raise HTTPException(403, "Forbidden")


@router.get("/", response_class=HTMLResponse, name="logs")
def logs(
    request: Request,
    status: str | None = None,
    table: str | None = None,
    run_id: str | None = None,
    q: str | None = None,
    page: int = Query(1, ge=1, le=queries.MAX_PAGE),
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
    with _connect(_conninfo()) as conn:
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


@router.get("/logs/{log_id}", response_class=HTMLResponse, name="log_detail")
def log_detail(
    request: Request,
    log_id: int,
    q: str | None = None,
    page: int = Query(1, ge=1, le=queries.MAX_PAGE),
    per_page: int = Query(50, ge=1, le=queries.MAX_PER_PAGE),
) -> HTMLResponse:
    with _connect(_conninfo()) as conn:
        entry = queries.get_log(conn, log_id)
        if entry is None:
            raise HTTPException(404, f"no sync log {log_id}")
        errors = queries.log_errors(conn, log_id, q or None, page, per_page)
        warnings = queries.log_warnings(conn, log_id)
        held = queries.held_deletes(conn, entry["table_name"])
    return _render(
        request,
        "log_detail.html",
        entry=entry,
        errors=errors,
        warnings=warnings,
        held=held,
        q=q or "",
        show_raw=_may_see_raw_records(request.state.user),
    )


@router.get("/logs/{log_id}/errors.csv", name="errors_csv")
def errors_csv(request: Request, log_id: int) -> StreamingResponse:
    conninfo = _conninfo()
    with _connect(conninfo) as conn:
        entry = queries.get_log(conn, log_id)
    if entry is None:
        raise HTTPException(404, f"no sync log {log_id}")
    filename = f"sync-errors-{entry['table_name']}-{log_id}.csv"
    return StreamingResponse(
        _csv_rows(conninfo, entry, include_raw=_may_see_raw_records(request.state.user), connect=_connect),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/errors/{error_id}/record.json",
    name="raw_record",
    dependencies=[Depends(_require_raw_record_access)],
)
def raw_record(error_id: int) -> JSONResponse:
    with _connect(_conninfo()) as conn:
        row = queries.raw_record(conn, error_id)
    if row is None:
        raise HTTPException(404, f"no sync error {error_id}")
    return JSONResponse(row["record_data"])


@router.get("/runs/{run_id:path}", response_class=HTMLResponse, name="run")
def run(request: Request, run_id: str) -> HTMLResponse:
    with _connect(_conninfo()) as conn:
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


def create_app() -> FastAPI:
    """The monitor app: :data:`router`'s routes and the cutover page, every one behind Airflow's auth."""
    from airflow.api_fastapi.core_api.security import get_user

    signed_in_user = Depends(get_user)  # resolved once per request, shared with the auth checks

    async def remember_user(request: Request, user: Any = signed_in_user) -> None:
        request.state.user = user  # for the routes that show more to some users

    app = FastAPI(
        title="Legacy sync monitor",
        dependencies=[*_require_on_sync_dags(READ_METHOD), Depends(remember_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(HTTPException, _login_redirect)

    @app.exception_handler(psycopg.errors.UndefinedTable)
    async def _no_schema(request: Request, exc: Exception) -> Response:
        return _render(
            request,
            "message.html",
            title="No sync yet",
            message="The ERP database has no legacy_sync tables yet: no sync has run.",
        )

    async def _unavailable(request: Request, exc: Exception) -> Response:
        # The reason (host, role, database error) goes to the server log, never to the page.
        log.error("sync monitor cannot serve: %s: %s", type(exc).__name__, exc)
        return _render(
            request, "message.html", status_code=503, title="Sync log unavailable", message=UNAVAILABLE
        )

    for failure in (psycopg.Error, MonitorUnavailable, queries.MonitorRoleError):
        app.add_exception_handler(failure, _unavailable)

    app.include_router(router)
    from legacy_sync.monitor import cutover

    cutover.add_routes(app, _render, lambda: _connect(_conninfo()), _cell, queries.CSV_BATCH)
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


def _csv_rows(
    conninfo: str,
    entry: dict[str, Any],
    include_raw: bool = True,
    connect: Callable[[str], AbstractContextManager[psycopg.Connection[Any]]] = queries.read_only,
) -> Iterator[bytes]:
    """The CSV body, streamed in keyset batches (memory bounded by one batch).

    Each batch is read in its own short transaction on its own connection, closed before the batch
    is sent: a client that reads slowly (or stops reading) holds no transaction, snapshot or
    connection on the ERP database. ``include_raw`` adds the raw 4D record column.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        data = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        return data

    buffer.write("\ufeff")  # BOM: spreadsheet programs then read UTF-8 correctly
    header = ["table", "run_id", "record_id", "reasons", "rejected_at"]
    writer.writerow([*header, "record_data"] if include_raw else header)
    yield flush()
    after: tuple[int, str, int] | None = None
    while True:
        with connect(conninfo) as conn:
            batch = queries.errors_batch(conn, entry["id"], after, queries.CSV_BATCH)
        for row in batch:
            cells = [
                _cell(entry["table_name"]),
                _cell(entry["run_id"]),
                _cell(row["record_id"]),
                _cell(row["error_message"]),
                _when(row["created_at"]),
            ]
            writer.writerow([*cells, _cell(row["record_data"])] if include_raw else cells)
        if batch:
            last = batch[-1]
            after = (len(last["record_id"]), last["record_id"], last["id"])
            yield flush()
        if len(batch) < queries.CSV_BATCH:
            break
    yield flush()
