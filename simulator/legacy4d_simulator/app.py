"""The Starlette application: ``/rest`` as a 4D server answers it, ``/_sim`` to steer it.

Routing mirrors 4D's URL forms (protocol doc section 1); request handling is synchronous under the
dataset lock so that a page is a consistent snapshot while tests mutate data from other threads.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legacy4d_simulator import errors
from legacy4d_simulator.config import SimulatorConfig
from legacy4d_simulator.dataset import Dataset, Table
from legacy4d_simulator.encoding import (
    EntityEncoder,
    default_attributes,
    envelope,
    envelope_stamp,
    key_uri,
    tracked,
)
from legacy4d_simulator.entitysets import EntitySetStore
from legacy4d_simulator.faults import RAW_SEND, FaultController, FaultMiddleware, Stats
from legacy4d_simulator.filters import Compiler, parse, strip_quotes
from legacy4d_simulator.query import QueryEngine, parse_orderby, sort_value
from legacy4d_simulator.schema import (
    DATE,
    DELETED_RECORDS,
    DELETED_SCHEMA,
    GLOBAL_STAMP,
    NUMERIC_TYPES,
    SHOWCASE_FIELDS,
    Field,
    TableSchema,
)
from legacy4d_simulator.sessions import Session, SessionManager
from legacy4d_simulator.structure import SchemaChanges, Structure, converter
from legacy4d_simulator.values import Clock, WireValue

_KNOWN_PARAMS = frozenset(
    {
        "$filter",
        "$params",
        "$orderby",
        "$top",
        "$limit",
        "$skip",
        "$attributes",
        "$method",
        "$timeout",
        "$savedfilter",
        "$savedorderby",
        "$distinct",
        "$compute",
        "$asArray",
        "$asarray",
        "$expand",
        "$clean",
        "$imageformat",
        "$version",
        "$queryplan",
        "$querypath",
        "$format",
        "$binary",
        "$lock",
        "$atomic",
        "$logicOperator",
        "$otherCollection",
        "$subOrderby",
    }
)
_WRITE_METHODS = frozenset({"delete", "update", "validate"})
_PATH = re.compile(
    r"^(?P<dc>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\((?P<k1>[^)]*)\)|\[(?P<k2>[^\]]*)\]|:(?P<uattr>[A-Za-z0-9_]+)\((?P<uval>[^)]*)\))?"
    r"(?:/(?P<rest>.*))?$"
)
# 1x1 transparent PNG served for picture fetches ($expand=Photo).
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082"
)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@dataclass
class Ctx:
    """One request's parsed parameters and session."""

    q: dict[str, str]
    session: Session | None = None
    new_cookie: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Simulator:
    """Server state: dataset, config, sessions, entity sets, faults and stats."""

    def __init__(
        self,
        dataset: Dataset,
        config: SimulatorConfig | None = None,
        faults: FaultController | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.ds = dataset
        self.cfg = config or SimulatorConfig()
        self.sessions = SessionManager(self.cfg.licences)
        self.entity_sets = EntitySetStore(self.cfg.max_entity_sets)
        self.faults = faults or FaultController()
        self.stats = stats or Stats()
        self.stats.active_sessions_fn = self.sessions.active
        self.faults.fired_counts = self.stats.faults_fired
        self.faults.on_expire = self.sessions.expire_all
        self.engine = QueryEngine()
        self.uniq_id = secrets.token_hex(16).upper()
        self._counts_cache: dict[tuple, tuple[int, Counter]] = {}
        if self.cfg.balancer_cookie is not None and self.cfg.balancer_cookie == self.cfg.cookie_name:
            raise ValueError("balancer_cookie must differ from the 4D session cookie_name")
        # The datastore saves by the server machine's clock; the last server built on a dataset
        # owns it.
        self.clock = Clock(self.cfg.clock_offset_days)
        dataset.clock = self.clock
        self.schema = SchemaChanges(
            dataset, self.cfg.hidden_tables, self.cfg.hidden_fields, self.cfg.privileged_fields
        )

    def set_clock(
        self, when: dt.datetime | dt.date | None = None, *, offset_days: float | None = None
    ) -> None:
        """Move the server's clock (``Date`` header, ``__TIMESTAMP`` and ModifiedDate/Time of saves)
        to ``when``, or ``offset_days`` off real time; neither: back to real time."""
        self.clock.set(when, offset_days=offset_days)

    # -- ASGI ----------------------------------------------------------------------------------
    def asgi(self) -> Any:
        """The ASGI app (fault/stat middleware around Starlette)."""
        routes = [
            Route("/rest/{path:path}", self.rest, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/rest", self.rest, methods=["GET"]),
            Route("/_sim/stats", self.sim_stats, methods=["GET"]),
            Route("/_sim/stats/reset", self.sim_stats_reset, methods=["POST"]),
            Route("/_sim/faults", self.sim_faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sim/mutate", self.sim_mutate, methods=["POST"]),
            Route("/_sim/clock", self.sim_clock, methods=["GET", "POST"]),
            Route("/_sim/schema", self.sim_schema, methods=["GET", "POST"]),
        ]
        return ResponseHeaders(FaultMiddleware(Starlette(routes=routes), self.faults, self.stats), self)

    # -- control endpoints ---------------------------------------------------------------------
    def _control_ok(self, request: Request) -> bool:
        token = self.cfg.control_token
        return token is None or request.headers.get("x-sim-token") == token

    async def sim_stats(self, request: Request) -> Response:
        if not self._control_ok(request):
            return _json({"error": "bad control token"}, 403)
        return _json(
            {
                **self.stats.as_dict(),
                "global_stamp": self.ds.global_stamp,
                "faults": self.faults.active(),
                "counts": {n: self.ds.count(n) for n in self.ds.tables},
            }
        )

    async def sim_stats_reset(self, request: Request) -> Response:
        if not self._control_ok(request):
            return _json({"error": "bad control token"}, 403)
        self.stats.reset()
        return _json({"ok": True})

    async def sim_faults(self, request: Request) -> Response:
        if not self._control_ok(request):
            return _json({"error": "bad control token"}, 403)
        if request.method == "DELETE":
            self.faults.clear(request.query_params.get("kind"))
        elif request.method == "POST":
            body = orjson.loads(await request.body() or b"{}")
            items = body if isinstance(body, list) else [body]
            try:
                for item in items:
                    params = dict(item)
                    self.faults.set(params.pop("kind"), **params)
            except (KeyError, ValueError, TypeError) as exc:
                return _json({"error": str(exc)}, 400)
        return _json({"faults": self.faults.active()})

    async def sim_clock(self, request: Request) -> Response:
        """``GET`` the server's time; ``POST {"now": ISO}`` / ``{"offset_days": n}`` / ``{}`` moves it."""
        if not self._control_ok(request):
            return _json({"error": "bad control token"}, 403)
        if request.method == "POST":
            body = orjson.loads(await request.body() or b"{}")
            try:
                when = dt.datetime.fromisoformat(body["now"]) if body.get("now") else None
                self.set_clock(when, offset_days=body.get("offset_days"))
            except (ValueError, TypeError) as exc:
                return _json({"error": str(exc)}, 400)
        return _json(
            {
                "now": self.clock.now().isoformat(),
                "offset_days": self.clock.offset / dt.timedelta(days=1),
            }
        )

    async def sim_schema(self, request: Request) -> Response:
        """``POST`` one structure change ``{"op": ..., "table": ..., ...}`` (or a list); ``GET`` the log."""
        if not self._control_ok(request):
            return _json({"error": "bad control token"}, 403)
        if request.method == "POST":
            body = orjson.loads(await request.body() or b"{}")
            try:
                for item in body if isinstance(body, list) else [body]:
                    self.schema.apply(item)
            except (KeyError, ValueError, TypeError) as exc:
                return _json({"error": str(exc), **self.schema.as_dict()}, 400)
        return _json(self.schema.as_dict())

    async def sim_mutate(self, request: Request) -> Response:
        if not self._control_ok(request):
            return _json({"error": "bad control token"}, 403)
        body = orjson.loads(await request.body() or b"{}")
        items = body if isinstance(body, list) else [body]
        results = []
        try:
            for item in items:
                op, table = item["op"], item["table"]
                if op == "insert":
                    results.append({"key": self.ds.insert(table, item.get("record") or {})})
                elif op == "update":
                    self.ds.update(table, int(item["key"]), item.get("changes") or {})
                    results.append({"key": int(item["key"])})
                elif op == "delete":
                    self.ds.delete(table, int(item["key"]))
                    results.append({"key": int(item["key"])})
                elif op == "add_twin":
                    self.ds.add_twin(table, int(item["key"]), item.get("changes") or {})
                    results.append({"key": int(item["key"])})
                else:
                    raise ValueError(f"unknown op {op!r}")
        except (KeyError, ValueError, TypeError) as exc:
            return _json({"error": str(exc), "done": results}, 400)
        return _json({"ok": True, "results": results, "global_stamp": self.ds.global_stamp})

    # -- /rest ---------------------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        path = request.path_params.get("path", "")
        q = dict(parse_qsl(request.url.query, keep_blank_values=True))
        ctx = Ctx(q)
        try:
            if path == "$directory/login":
                resp = await self.login(request, ctx)
            elif path == "$catalog/authentify":
                resp = await self.authentify(request, ctx)
            else:
                resp = self.dispatch(request, path, ctx)
        except errors.RestError as err:
            resp = _json(err.body(), err.status)
        if ctx.new_cookie:
            resp.set_cookie(self.cfg.cookie_name, ctx.new_cookie, path="/", httponly=True)
        return resp

    # sessions ---------------------------------------------------------------------------------
    def _idle(self, request: Request) -> float:
        raw = request.headers.get("session-4D-length")
        try:
            minutes = max(60, int(raw)) if raw else 60
        except ValueError:
            minutes = 60
        return self.cfg.session_idle_seconds * minutes / 60

    def _new_session(self, ctx: Ctx, idle: float, **kw: Any) -> Session:
        s = self.sessions.create(idle, structure=self.schema.current, **kw)
        self.stats.sessions_created += 1
        ctx.new_cookie = s.id
        ctx.session = s
        return s

    def _structure(self, ctx: Ctx) -> Structure:
        """The structure version a request sees: its session's (a structure change needs a new
        REST session to be seen, protocol doc 8.13), or the newest when configured so."""
        s = ctx.session
        if self.cfg.schema_changes_need_new_session and s is not None and s.structure is not None:
            return s.structure  # type: ignore[no-any-return]
        return self.schema.current

    def _session(self, request: Request, ctx: Ctx, *, descriptive: bool) -> Session:
        """Resolve the request's session per access mode; may open one (licence) or refuse."""
        cfg = self.cfg
        s = self.sessions.lookup(request.cookies.get(cfg.cookie_name))
        if s is not None:
            ctx.session = s
            if cfg.restricted and not s.authenticated and not descriptive:
                raise errors.unauthorized()
            return s
        if not cfg.restricted:
            # Open access: every request without a valid cookie is a new guest session.
            return self._new_session(ctx, cfg.session_idle_seconds)
        if cfg.force_login and descriptive:
            return self._new_session(ctx, cfg.session_idle_seconds, licensed=False)
        raise errors.unauthorized()

    async def login(self, request: Request, ctx: Ctx) -> Response:
        """``POST /rest/$directory/login`` with ``username-4D``/``password-4D`` headers."""
        if request.method != "POST":
            raise errors.RestError(500, (1813, "The login method is not applicable with GET; use POST"))
        self.stats.logins += 1
        cfg = self.cfg
        user = request.headers.get("username-4D")
        if cfg.restricted:
            pw = request.headers.get("password-4D")
            hashed = request.headers.get("hashed-password-4D")
            ok = user == cfg.username and (
                (pw is not None and pw == cfg.password)
                or (hashed is not None and cfg.hashed_password is not None and hashed == cfg.hashed_password)
            )
            if not ok:
                self.stats.failed_logins += 1
                return _json({"result": False})
        return self._open_authenticated(request, ctx, user)

    def _open_authenticated(self, request: Request, ctx: Ctx, user: str | None) -> Response:
        idle = self._idle(request)
        s = self.sessions.lookup(request.cookies.get(self.cfg.cookie_name))
        if s is not None:
            self.sessions.take_licence(s)
            s.authenticated, s.user, s.idle_seconds = True, user, idle
            ctx.new_cookie = s.id
        else:
            self._new_session(ctx, idle, authenticated=True, user=user)
        return _json({"result": True})

    # routing ----------------------------------------------------------------------------------
    def dispatch(self, request: Request, path: str, ctx: Ctx) -> Response:
        """Route a ``/rest/...`` request."""
        path = path.strip("/")
        if path.startswith("$catalog"):
            self._session(request, ctx, descriptive=True)
            return self.catalog(path, self._structure(ctx))
        if path == "$directory/logout" and self.cfg.logout_endpoint:
            # Wakanda-era pages document GET; POST is accepted too. The licence is freed now
            # instead of after the idle timeout; without a live session there is nothing to end.
            self.sessions.end(request.cookies.get(self.cfg.cookie_name))
            return _json({"result": True})
        for name in ctx.q:
            if name.startswith("$") and name not in _KNOWN_PARAMS:
                raise errors.RestError(500, (1811, f'"{name}" is not a valid $ keyword'))
        method = ctx.q.get("$method", "").lower()
        if method in _WRITE_METHODS:
            if request.method == "GET":
                raise errors.RestError(500, (1828, f"The {method} method cannot be called with GET"))
            raise errors.RestError(500, (1813, f"$method={method} is not applicable (read-only simulator)"))
        self._session(request, ctx, descriptive=False)
        if path == "$info":
            return self.info()
        m = _PATH.match(path)
        if not m or path.startswith("$"):
            raise errors.dataclass_not_found(path.split("/")[0] or path)
        with self.ds.lock:
            return self.data(request, self._table(m["dc"], self._structure(ctx)), m, ctx)

    async def authentify(self, request: Request, ctx: Ctx) -> Response:
        """Force-login entry point: ``POST /rest/$catalog/authentify`` with ``[{"name","password"}]``.

        ``authentify`` is an application function in 4D; this one checks the configured
        credentials, takes the licence and answers ``true``/``false`` like a typical ERP would.
        """
        if request.method != "POST":
            raise errors.RestError(500, (1813, "authentify must be called with POST"))
        self.stats.logins += 1
        try:
            body = orjson.loads(await request.body() or b"[]")
            creds = body[0] if isinstance(body, list) and body else body
            user, pw = creds.get("name"), creds.get("password")
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            user = pw = None
        if self.cfg.restricted and not (user == self.cfg.username and pw == self.cfg.password):
            self.stats.failed_logins += 1
            return _json(False)
        self._open_authenticated(request, ctx, user)
        return _json(True)

    def _table(self, name: str, view: Structure) -> Table:
        """The exposed dataclass ``name`` as ``view`` shows it (its ``structure`` set), or 1800."""
        if name in view.hidden_tables:
            raise errors.dataclass_not_found(name)
        if name == DELETED_RECORDS and not self.cfg.change_tracking:
            raise errors.dataclass_not_found(name)
        try:
            return view.table(self.ds, name)
        except KeyError:
            raise errors.dataclass_not_found(name) from None

    # -- catalog / info ------------------------------------------------------------------------
    def _exposed(self, view: Structure) -> list[TableSchema]:
        hidden = view.hidden_tables | self.faults.hidden_tables()
        out = [view.schemas[name] for name in self.ds.tables if name not in hidden]
        if self.cfg.change_tracking and DELETED_RECORDS not in hidden:
            out.append(DELETED_SCHEMA)
        return out

    def catalog(self, path: str, view: Structure) -> Response:
        """``$catalog``, ``$catalog/$all``, ``$catalog/{DataClass}``."""
        if path == "$catalog":
            return _json(
                {
                    "__UNIQID": self.uniq_id,
                    "dataClasses": [
                        {"name": s.name, "uri": f"/rest/$catalog/{s.name}", "dataURI": f"/rest/{s.name}"}
                        for s in self._exposed(view)
                    ],
                }
            )
        if path == "$catalog/$all":
            return _json(
                {
                    "__UNIQID": self.uniq_id,
                    "dataClasses": [self.dataclass_info(s, view) for s in self._exposed(view)],
                }
            )
        name = path[len("$catalog/") :]
        return _json(self.dataclass_info(self._table(name, view).schema, view))

    def dataclass_info(self, s: TableSchema, view: Structure) -> dict[str, Any]:
        """One dataclass as ``$catalog/{DataClass}`` describes it (fields as ``view`` has them).

        ``fieldPos`` is the 4D field number: a removed or hidden field leaves a gap, and fields
        added at run time come after ``__GlobalStamp`` (and the showcase fields).
        """
        cfg = self.cfg
        attrs: list[dict[str, Any]] = []

        def storage(f: Field, pos: int) -> None:
            if f"{s.name}.{f.name}" in view.hidden_fields:
                return
            a: dict[str, Any] = {
                "name": f.name,
                "kind": "storage",
                "fieldPos": pos,
                "scope": "public",
                "type": f.type,
            }
            if f.indexed:
                a["indexed"] = True
            if f.name == s.key:
                a["identifying"] = True
            if f.type == DATE:
                a["simpleDate"] = True
            attrs.append(a)

        original = [f for f in s.fields if not f.added]
        for pos, f in enumerate(original, 1):
            storage(f, pos)
        pos = len(original)
        if tracked(cfg, s.name):
            pos += 1
            attrs.append(
                {
                    "name": GLOBAL_STAMP,
                    "kind": "storage",
                    "fieldPos": pos,
                    "scope": "public",
                    "type": "long64",
                    "indexed": True,
                }
            )
        if cfg.showcase_fields and s.name == "Products":
            for f in SHOWCASE_FIELDS:
                pos += 1
                attrs.append(
                    {"name": f.name, "kind": "storage", "fieldPos": pos, "scope": "public", "type": f.type}
                )
        for f in s.fields:
            if f.added:
                pos += 1
                storage(f, pos)
        if cfg.relations:
            for r in s.relations:
                if r.many_to_one:
                    attrs.append(
                        {
                            "name": r.name,
                            "kind": "relatedEntity",
                            "scope": "public",
                            "type": r.target,
                            "path": r.target,
                            "foreignKey": r.fk,
                            **({"inverseName": r.inverse} if r.inverse else {}),
                        }
                    )
                else:
                    attrs.append(
                        {
                            "name": r.name,
                            "kind": "relatedEntities",
                            "scope": "public",
                            "type": f"{r.target}Selection",
                            "reversePath": True,
                            "path": r.inverse,
                        }
                    )
        return {
            "name": s.name,
            "className": s.name,
            "collectionName": f"{s.name}Selection",
            "tableNumber": s.number,
            "scope": "public",
            "dataURI": f"/rest/{s.name}",
            "attributes": attrs,
            "key": [{"name": s.key}],
        }

    def info(self) -> Response:
        """``$info``: entity sets and sessions."""
        now = time.monotonic()
        return _json(
            {
                "cacheSize": 209715200,
                "usedCache": 3136000,
                "entitySetCount": len(self.entity_sets.ids()),
                "entitySet": [{"id": i} for i in self.entity_sets.ids()],
                "ProgressInfo": [],
                "sessionInfo": [
                    {
                        "sessionID": s.id,
                        "userID": s.user or "",
                        "userName": s.user or "guest",
                        "lifeTime": int(s.idle_seconds),
                        "expiration": round(s.idle_seconds - (now - s.last_used), 1),
                    }
                    for s in self.sessions.sessions()
                ],
            }
        )

    # -- data ----------------------------------------------------------------------------------
    def _plan(self, t: Table, filter_text: str | None, params_text: str | None) -> Any:
        if not filter_text:
            return None
        text = strip_quotes(filter_text, '"')
        params: list[Any] = []
        if params_text:
            try:
                params = orjson.loads(strip_quotes(params_text, "'"))
            except orjson.JSONDecodeError:
                raise errors.RestError(
                    500,
                    (1280, "The $params value is not a valid JSON array"),
                    (1201, "Cannot analyse the query"),
                ) from None
            if not isinstance(params, list):
                params = [params]
        comp = Compiler(
            t.schema,
            params,
            tracked=tracked(self.cfg, t.schema.name),
            strict_dates=self.cfg.strict_dates,
            resolve_relation=self._relation_resolver(t),
            opaque=t.wire_fields,
            pk_of=t.pk if t.twins else None,
            hidden=t.structure.hidden(t.schema.name),
            converters=_converters(t),
        )
        return comp.plan(parse(text))

    def _relation_resolver(self, t: Table) -> Callable[[str, str], Any]:
        def resolve(rel_name: str, sub: str) -> Any:
            rel = t.schema.relation(rel_name) if self.cfg.relations else None
            if rel is None or not rel.many_to_one:
                return None
            target = t.structure.table(self.ds, rel.target)
            f = target.schema.field(sub)
            if f is None or sub in t.structure.hidden(rel.target):
                return None
            fk, i = t.schema.index[rel.fk], target.schema.index[sub]
            conv = converter(target, sub) or (lambda v: v)

            def fetch(row: tuple) -> Any:
                v = row[fk]
                return conv(target.row(v)[i]) if v is not None and target.contains(v) else None

            return f.type, fetch

        return resolve

    def _row_filter(self, t: Table) -> Callable[[int], bool] | None:
        if t.schema.name == DELETED_RECORDS and self.cfg.untracked_tables:
            untracked = self.cfg.untracked_tables
            return lambda k: t.row(k)[3] not in untracked
        return None

    def _selection(
        self, t: Table, q: Mapping[str, str], filter_text: str | None = None, orderby_text: str | None = None
    ) -> Any:
        filter_text = q.get("$filter") if filter_text is None else filter_text
        shuffle = self.cfg.shuffle_unsorted
        if orderby_text is None:
            orderby_text = q.get("$orderby")
            if orderby_text and self.faults.fire("ignore_orderby", t.schema.name):
                # The fault's point is visible disorder, even where unsorted means key order.
                orderby_text, shuffle = "", True
        plan = self._plan(t, filter_text, q.get("$params"))
        orderby = (
            parse_orderby(
                strip_quotes(orderby_text, '"'),
                t,
                tracked=tracked(self.cfg, t.schema.name),
                hidden=t.structure.hidden(t.schema.name),
            )
            if orderby_text
            else []
        )
        key = (
            t.schema.name,
            filter_text,
            q.get("$params"),
            orderby_text,
            shuffle,
            t.structure.version,  # a retyped field converts per version
            self.ds.global_stamp,
        )
        return self.engine.select(
            t, plan, orderby, shuffle=shuffle, cache_key=key, row_filter=self._row_filter(t)
        )

    def _page(self, table: str, q: Mapping[str, str]) -> tuple[int, int]:
        def num(name: str) -> int | None:
            raw = q.get(name)
            if raw is None or raw == "":
                return None
            try:
                return max(0, int(strip_quotes(raw, "'")))
            except ValueError:
                raise errors.RestError(500, (1806, f"Malformed {name} value {raw!r}")) from None

        top = num("$top")
        if top is None:
            top = num("$limit")
        if top is None:
            top = self.cfg.default_top
        if self.cfg.max_page_size is not None:
            top = min(top, self.cfg.max_page_size)
        return num("$skip") or 0, self.faults.page_cap(table, top)

    def _attr_list(self, t: Table, path_attrs: str | None, q: Mapping[str, str]) -> list[str] | None:
        raw = q.get("$attributes")
        names: list[str] = []
        for src in (path_attrs, raw):
            if src:
                names.extend(a.strip() for a in strip_quotes(src, '"').split(",") if a.strip())
        if (path_attrs or raw) and not names:
            raise errors.RestError(500, (1816, "The list of attributes is empty"))
        return names or None

    def _encoder(self, t: Table, attrs: list[str] | None, q: Mapping[str, str]) -> EntityEncoder:
        as_array = q.get("$asArray", q.get("$asarray", "")).lower() == "true"
        enc = EntityEncoder(self.ds, t, self.cfg, attrs, as_array=as_array)
        if as_array and self.cfg.relations:
            # $asArray turns 1->N relations into {"__COUNT": n}.
            for a in enc.attrs:
                rel = t.schema.relation(a.name)
                if rel is not None and not rel.many_to_one:
                    counts = self._child_counts(rel.target, rel.fk)
                    a.get = lambda k, r, m, counts=counts: {"__COUNT": counts.get(k, 0)}
        return enc

    def _child_counts(self, child: str, fk: str) -> Counter:
        key = (child, fk)
        hit = self._counts_cache.get(key)
        if hit and hit[0] == self.ds.global_stamp:
            return hit[1]
        t = self.ds.table(child)
        i = t.schema.index[fk]
        counts = Counter(t.row(k)[i] for k in t.rids())
        self._counts_cache[key] = (self.ds.global_stamp, counts)
        return counts

    def data(self, request: Request, t: Table, m: re.Match, ctx: Ctx) -> Response:
        """Every ``/rest/{DataClass}...`` form."""
        q = ctx.q
        rest = m["rest"] or ""
        key_text = m["k1"] if m["k1"] is not None else m["k2"]
        if m["uattr"]:
            return self.by_attribute(t, m["uattr"], m["uval"], rest, q)
        if key_text is not None:
            return self.by_key(t, key_text, rest, q)
        if rest.startswith("$entityset/") or "/$entityset/" in rest:
            attrs_part, _, set_id = rest.partition("$entityset/")
            return self.entity_set(t, set_id.strip("/"), attrs_part.strip("/") or None, q)
        if rest and ("$distinct" in q or "$compute" in q):
            return self.aggregate(t, rest, q)
        return self.collection(t, rest or None, q)

    def collection(self, t: Table, path_attrs: str | None, q: Mapping[str, str]) -> Response:
        """An entity collection page (optionally also saved as an entity set)."""
        sel = self._selection(t, q)
        skip, top = self._page(t.schema.name, q)
        enc = self._encoder(t, self._attr_list(t, path_attrs, q), q)
        set_uri = None
        if q.get("$method", "").lower() == "entityset":
            keys = array("q", (sel[i] for i in range(len(sel))))
            timeout = float(q.get("$timeout") or self.cfg.entityset_timeout)
            es = self.entity_sets.add(
                t.schema.name,
                keys,
                timeout,
                saved_filter=q.get("$savedfilter"),
                saved_orderby=q.get("$savedorderby"),
                saved_params=q.get("$params"),
            )
            set_uri = f"/rest/{t.schema.name}/$entityset/{es.id}"
        entities = [enc.entity(sel[i]) for i in range(skip, min(len(sel), skip + top))]
        if enc.as_array:
            return _json(entities)
        return _json(
            envelope(
                self.cfg,
                t.schema.name,
                envelope_stamp(self.ds, self.cfg, t.schema.name),
                len(sel),
                skip,
                entities,
                set_uri,
            )
        )

    def entity_set(self, t: Table, set_id: str, path_attrs: str | None, q: Mapping[str, str]) -> Response:
        """Page through, release or clean a stored entity set."""
        es = self.entity_sets.get(set_id)
        method = q.get("$method", "").lower()
        if es is None and method != "release" and (q.get("$savedfilter") or q.get("$savedorderby")):
            # An expired set asked for again with its saved query is rebuilt (10 minute timeout).
            sq = {"$params": q.get("$params", "")}
            sel = self._selection(t, sq, q.get("$savedfilter") or "", q.get("$savedorderby") or "")
            es = self.entity_sets.add(
                t.schema.name,
                array("q", (sel[i] for i in range(len(sel)))),
                600,
                set_id=set_id,
                saved_filter=q.get("$savedfilter"),
                saved_orderby=q.get("$savedorderby"),
            )
        if es is None:
            raise errors.entityset_not_found(set_id)
        if es.table != t.schema.name:
            raise errors.RestError(500, (1803, f'EntitySet "{set_id}" does not match "{t.schema.name}"'))
        if method == "release":
            self.entity_sets.release(set_id)
            return _json({"ok": True})
        keys: Any = es.keys
        if q.get("$clean", "").lower() == "true":
            keys = array("q", (k for k in es.keys if t.live(k)))
            if method == "entityset":
                es = self.entity_sets.add(
                    t.schema.name, keys, float(q.get("$timeout") or self.cfg.entityset_timeout)
                )
        if q.get("$filter") or q.get("$orderby"):
            members = set(k for k in keys if t.live(k))
            sel = self._selection(t, q)
            keys = array("q", (sel[i] for i in range(len(sel)) if sel[i] in members))
        skip, top = self._page(t.schema.name, q)
        enc = self._encoder(t, self._attr_list(t, path_attrs, q), q)
        entities = [enc.entity_or_placeholder(keys[i]) for i in range(skip, min(len(keys), skip + top))]
        if enc.as_array:
            return _json(entities)
        return _json(
            envelope(
                self.cfg,
                t.schema.name,
                envelope_stamp(self.ds, self.cfg, t.schema.name),
                len(keys),
                skip,
                entities,
                f"/rest/{t.schema.name}/$entityset/{es.id}",
            )
        )

    def _single(self, t: Table, key: int, attrs: list[str] | None, q: Mapping[str, str]) -> Response:
        enc = self._encoder(t, attrs, q)
        ent = enc.entity(key)
        head: dict[str, Any] = {"__entityModel": t.schema.name}
        if not self.cfg.legacy_quirks:
            head = {"__DATACLASS": t.schema.name, **head}
        return _json({**head, **ent})

    def _parse_key(self, t: Table, text: str) -> int:
        text = strip_quotes(strip_quotes(text, '"'), "'")
        try:
            return int(text)
        except ValueError:
            raise errors.entity_not_found(t.schema.name, text) from None

    def by_key(self, t: Table, key_text: str, rest: str, q: Mapping[str, str]) -> Response:
        """``/rest/T(k)``, ``/rest/T[k]``, ``/rest/T(k)/a,b``, ``/rest/T(k)/rel?$expand=rel``."""
        key = self._parse_key(t, key_text)
        if not t.contains(key):
            raise errors.entity_not_found(t.schema.name, str(key))
        rel = t.schema.relation(rest) if rest and self.cfg.relations else None
        if rel is not None:
            target = t.structure.table(self.ds, rel.target)
            if rel.many_to_one:
                v = t.row(key)[t.schema.index[rel.fk]]
                if v is None or not target.contains(v):
                    raise errors.entity_not_found(rel.target, str(v))
                return self._single(target, v, self._attr_list(target, None, q), q)
            fk = target.schema.index[rel.fk]
            children = array("q", (c for c in target.rids() if target.row(c)[fk] == key))
            skip, top = self._page(rel.target, q)
            enc = self._encoder(target, self._attr_list(target, None, q), q)
            ents = [enc.entity(children[i]) for i in range(skip, min(len(children), skip + top))]
            return _json(
                envelope(
                    self.cfg,
                    rel.target,
                    envelope_stamp(self.ds, self.cfg, rel.target),
                    len(children),
                    skip,
                    ents,
                )
            )
        if (
            rest
            and "$expand" in q
            and self.cfg.showcase_fields
            and rest == "Photo"
            and t.schema.name == "Products"
        ):
            return Response(_PNG, media_type="image/png")
        return self._single(t, key, self._attr_list(t, rest or None, q), q)

    def by_attribute(self, t: Table, attr: str, value: str, rest: str, q: Mapping[str, str]) -> Response:
        """``/rest/T:attr(value)``: one entity by a unique non-PK attribute."""
        f = t.schema.field(attr)
        if f is None or attr in t.structure.hidden(t.schema.name):
            raise errors.attribute_not_found(attr, t.schema.name)
        value = strip_quotes(strip_quotes(value, '"'), "'")
        plan = Compiler(
            t.schema,
            [value],
            tracked=False,
            strict_dates=False,
            opaque=t.wire_fields,
            pk_of=t.pk if t.twins else None,
            converters=_converters(t),
        ).plan(parse(f"{attr} === :1"))
        sel = self.engine.select(t, plan, [(t.schema.key, False)], shuffle=False)
        if not len(sel):
            raise errors.entity_not_found(t.schema.name, value)
        return self._single(t, sel[0], self._attr_list(t, rest or None, q), q)

    def aggregate(self, t: Table, attr: str, q: Mapping[str, str]) -> Response:
        """``$distinct=true`` (bare sorted array) and ``$compute`` (object or bare scalar)."""
        f = t.schema.field(attr)
        if f is None or attr in t.structure.hidden(t.schema.name):
            raise errors.attribute_not_found(attr, t.schema.name)
        i = t.schema.index[attr]
        sel = self._selection(t, {k: v for k, v in q.items() if k != "$orderby"})
        values = [t.row(sel[j])[i] for j in range(len(sel))]
        conv = converter(t, attr)
        if conv is not None:
            values = [conv(v) for v in values]
        if attr in t.wire_fields:
            values = [None if isinstance(v, WireValue) else v for v in values]
        enc = EntityEncoder(self.ds, t, self.cfg, [attr])
        wire = enc.attrs[0].get
        if q.get("$distinct", "").lower() == "true":
            uniq = {sort_value(f.type, v): v for v in values if v is not None}
            return _json([wire(0, (v,) * (i + 1), (0, 0, None)) for _s, v in sorted(uniq.items())])
        op = q.get("$compute", "")
        present = [v for v in values if v is not None]
        numeric = f.type in NUMERIC_TYPES
        result: dict[str, Any] = {"count": len(present)}
        if numeric:
            result["sum"] = sum(present)
            result["average"] = (sum(present) / len(present)) if present else 0
        if present and f.type != DATE:
            result["min"], result["max"] = min(present), max(present)
        if op == "$all":
            return _json({attr: result})
        if op not in ("count", "sum", "average", "min", "max"):
            raise errors.RestError(500, (1817, f'"{op}" is not a valid compute action'))
        if op not in result:
            raise errors.RestError(500, (1817, f'"{op}" cannot be computed on "{attr}"'))
        return _json(result[op])


class ResponseHeaders:
    """Headers every response carries: ``Date`` from the simulator's clock, and the balancer cookie.

    uvicorn's own ``date`` header is switched off (``SimulatorServer``) so there is exactly one,
    and it tells the simulated server machine's time, not the test machine's.
    """

    def __init__(self, app: Any, sim: Simulator) -> None:
        self.app = app
        self.sim = sim
        name = sim.cfg.balancer_cookie
        self.cookie = f"{name}=node1; Path=/".encode() if name else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"date", self.sim.clock.http_date().encode()))
                if self.cookie is not None:
                    headers.append((b"set-cookie", self.cookie))
                message = {**message, "headers": headers}
            await send(message)

        scope[RAW_SEND] = send
        await self.app(scope, receive, with_headers)


def _converters(t: Table) -> dict[str, Callable[[Any], Any]]:
    """Read conversions of ``t``'s retyped fields, for the query engine (empty almost always)."""
    return {name: conv for name in t.retyped if (conv := converter(t, name)) is not None}


def default_entity_attributes(cfg: SimulatorConfig, schema: TableSchema) -> list[str]:
    """Public helper: what an entity carries without ``$attributes`` (configured structure)."""
    return default_attributes(cfg, schema, cfg.hidden_fields | cfg.privileged_fields)


def create_app(dataset: Dataset, config: SimulatorConfig | None = None) -> tuple[Any, Simulator]:
    """Build the ASGI app and its :class:`Simulator` state."""
    sim = Simulator(dataset, config)
    return sim.asgi(), sim


__all__ = ["Simulator", "create_app", "key_uri"]
