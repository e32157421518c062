"""Fault injection and request statistics, as an ASGI middleware in front of ``/rest``.

Faults are off until asked for. Each rule fires on matching ``/rest`` requests (optionally only
one dataclass): for the next ``count`` of them, on every ``every``-th one, with probability
``rate``, or always when none of those is given.

=================== ============================================================================
kind                parameters and effect
=================== ============================================================================
error_500           500 with an ``__ERROR`` body (a 4D processing error)
error_503           503 ``Service Unavailable`` (text, optional ``retry_after`` header) as a busy
                    web server or proxy answers
drop_connection     close the socket: ``mode="reset"`` (no response, default) or
                    ``mode="truncate"`` (headers and half a body, then close)
slow                sleep ``delay`` seconds before answering; ``min_top`` limits it to pages
                    of at least that ``$top``
licence_burst       402 / errCode 1823 for the next ``count`` requests (logins included)
expire_sessions     drop every session now (``after=0``) or after ``after`` more requests
page_cap            cap ``$top`` at ``max`` (the server silently sends less)
refuse_table        ``table`` always answers 500 ``__ERROR``, or 404/1800 with ``hidden=True``
                    (then also absent from ``$catalog`` and ``$catalog/$all``)
ignore_orderby      ``$orderby`` is ignored (a server or proxy that drops it): the selection is
                    served in its unsorted, scrambled order; ``$filter``/``$top``/``$skip`` and
                    ``__COUNT`` are honoured
=================== ============================================================================

``page_cap`` and ``ignore_orderby`` act inside the application (they change what is served, not
whether it is served); the others act in :class:`FaultMiddleware` before the application runs.
Every firing is counted per kind in :attr:`FaultController.fired_counts` (``Stats.faults_fired``),
which outlives the rule, so a test can prove that a fault it injected really fired.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from legacy4d_simulator import errors

KINDS = (
    "error_500",
    "error_503",
    "drop_connection",
    "slow",
    "licence_burst",
    "expire_sessions",
    "page_cap",
    "refuse_table",
    "ignore_orderby",
)
RAW_SEND = "legacy4d.raw_send"
"""Scope key of the server's own ``send``: its bound method reaches the transport (see _drop)."""
# Kinds the application asks about while answering (see FaultController.fire / page_cap).
_APP_KINDS = frozenset({"page_cap", "ignore_orderby"})
_ORDER = {
    k: i
    for i, k in enumerate(
        (
            "expire_sessions",
            "slow",
            "licence_burst",
            "refuse_table",
            "error_500",
            "error_503",
            "drop_connection",
            "page_cap",
        )
    )
}


@dataclass
class Rule:
    """One active fault."""

    kind: str
    params: dict[str, Any]
    seen: int = 0
    fired: int = 0


class FaultController:
    """Thread-safe set of fault rules; usable from tests, the CLI and ``POST /_sim/faults``."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.on_expire: Callable[[], None] | None = None
        self.fired_counts: Counter = Counter()
        """Firings per kind since the start (or the last stats reset), kept when rules go away."""

    def set(self, kind: str, **params: Any) -> None:
        """Switch a fault on (replacing a rule of the same kind and table).

        Raises:
            ValueError: unknown kind.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        with self._lock:
            self._rules = [
                r
                for r in self._rules
                if not (r.kind == kind and r.params.get("table") == params.get("table"))
            ]
            self._rules.append(Rule(kind, dict(params)))
        if kind == "expire_sessions" and not params.get("after") and self.on_expire:
            self.clear("expire_sessions")
            with self._lock:
                self.fired_counts[kind] += 1
            self.on_expire()

    def clear(self, kind: str | None = None) -> None:
        """Switch one kind (or every fault) off."""
        with self._lock:
            self._rules = [r for r in self._rules if kind is not None and r.kind != kind]

    def active(self) -> list[dict[str, Any]]:
        """The active rules as plain dicts."""
        with self._lock:
            return [{"kind": r.kind, **r.params, "fired": r.fired} for r in self._rules]

    def page_cap(self, table: str | None, top: int) -> int:
        """``top`` capped by the ``page_cap`` rules for ``table``; counted as fired when it cuts."""
        with self._lock:
            cutting = [
                r
                for r in self._rules
                if r.kind == "page_cap"
                and r.params.get("table") in (None, table)
                and int(r.params["max"]) < top
            ]
            if not cutting:
                return top
            self.fired_counts["page_cap"] += 1
            for r in cutting:
                r.fired += 1
            return min(int(r.params["max"]) for r in cutting)

    def hidden_tables(self) -> frozenset[str]:
        """Tables refused with ``hidden=True``: a non-exposed dataclass is absent from ``$catalog``."""
        with self._lock:
            return frozenset(
                r.params["table"]
                for r in self._rules
                if r.kind == "refuse_table" and r.params.get("hidden") and r.params.get("table")
            )

    def fire(self, kind: str, table: str | None) -> bool:
        """Whether an application-side fault (``ignore_orderby``) acts on this request (counted)."""
        with self._lock:
            for r in list(self._rules):
                if r.kind != kind or r.params.get("table") not in (None, table):
                    continue
                if self._hit(r):
                    return True
        return False

    def _hit(self, r: Rule) -> bool:
        """Advance a rule's counters for one matching request; True when it fires (lock held)."""
        p = r.params
        r.seen += 1
        if "count" in p:
            hit = r.fired < int(p["count"])
        elif "every" in p:
            hit = r.seen % max(1, int(p["every"])) == 0
        elif "rate" in p:
            hit = self._rng.random() < float(p["rate"])
        else:
            hit = True
        if hit:
            r.fired += 1
            self.fired_counts[r.kind] += 1
            if "count" in p and r.fired >= int(p["count"]):
                self._rules.remove(r)
        return hit

    def decide(self, table: str | None, top: int | None, is_login: bool) -> list[Rule]:
        """Rules firing for this request (counters advance), in the order they act."""
        fired: list[Rule] = []
        expire_now = False
        with self._lock:
            for r in list(self._rules):
                p = r.params
                if r.kind in _APP_KINDS:
                    continue
                if r.kind == "expire_sessions":
                    r.seen += 1
                    if r.seen >= int(p.get("after") or 0):
                        self._rules.remove(r)
                        r.fired += 1
                        self.fired_counts[r.kind] += 1
                        expire_now = True
                    continue
                if p.get("table") and p["table"] != table:
                    continue
                if r.kind == "refuse_table" and not p.get("table"):
                    continue
                if r.kind == "slow" and p.get("min_top") and (top or 0) < int(p["min_top"]):
                    continue
                if is_login and r.kind not in ("licence_burst", "slow", "drop_connection"):
                    continue
                if self._hit(r):
                    fired.append(r)
        if expire_now and self.on_expire:
            self.on_expire()
        return sorted(fired, key=lambda r: _ORDER[r.kind])


@dataclass
class Stats:
    """Request counters (``SimulatorServer.stats`` / ``GET /_sim/stats``)."""

    requests: int = 0
    requests_by_status: Counter = field(default_factory=Counter)
    logins: int = 0
    failed_logins: int = 0
    sessions_created: int = 0
    faults_fired: Counter = field(default_factory=Counter)
    """Cumulative firings per fault kind (the simulator shares its FaultController's counter)."""
    active_sessions_fn: Callable[[], int] = field(default=lambda: 0, repr=False)

    @property
    def active_sessions(self) -> int:
        """Sessions holding a licence now."""
        return self.active_sessions_fn()

    def __getitem__(self, name: str) -> Any:
        """``stats["402s"]`` style access for the status counters and fields."""
        if name.endswith("s") and name[:-1].isdigit():
            return self.requests_by_status[int(name[:-1])]
        return self.as_dict()[name]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot."""
        return {
            "requests": self.requests,
            "requests_by_status": {str(k): v for k, v in sorted(self.requests_by_status.items())},
            "logins": self.logins,
            "failed_logins": self.failed_logins,
            "sessions_created": self.sessions_created,
            "active_sessions": self.active_sessions,
            "402s": self.requests_by_status[402],
            "faults_fired": dict(self.faults_fired),
        }

    def reset(self) -> None:
        """Zero the counters (sessions are left alone)."""
        self.requests = self.logins = self.failed_logins = self.sessions_created = 0
        self.requests_by_status.clear()
        self.faults_fired.clear()


def _table_of(path: str) -> str | None:
    rest = path[len("/rest/") :]
    if rest.startswith("$catalog/"):  # $catalog/{DataClass} describes that dataclass
        rest = rest[len("$catalog/") :]
    for sep in "([/:?":
        rest = rest.split(sep, 1)[0]
    return rest or None


def _top_of(query: bytes) -> int | None:
    qs = parse_qs(query.decode("latin-1"))
    for name in ("$top", "$limit"):
        if name in qs:
            try:
                return int(qs[name][0].strip("'\""))
            except ValueError:
                return None
    return None


class FaultMiddleware:
    """Counts requests and statuses and applies active faults to ``/rest`` requests."""

    def __init__(self, app: Any, faults: FaultController, stats: Stats) -> None:
        self.app = app
        self.faults = faults
        self.stats = stats

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/rest"):
            await self.app(scope, receive, send)
            return
        stats = self.stats
        stats.requests += 1

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                stats.requests_by_status[message["status"]] += 1
            await send(message)

        path = unquote(scope["path"])
        rules = self.faults.decide(
            _table_of(path),
            _top_of(scope.get("query_string", b"")),
            path.startswith("/rest/$directory/login"),
        )
        for rule in rules:
            p = rule.params
            if rule.kind == "slow":
                await asyncio.sleep(float(p.get("delay", 1.0)))
            elif rule.kind == "licence_burst":
                await _send_error(counting_send, errors.max_sessions())
                return
            elif rule.kind == "refuse_table":
                err = (
                    errors.dataclass_not_found(p["table"])
                    if p.get("hidden")
                    else errors.RestError(500, (1200, f'Cannot complete the request on "{p["table"]}"'))
                )
                await _send_error(counting_send, err)
                return
            elif rule.kind == "error_500":
                await _send_error(
                    counting_send,
                    errors.RestError(
                        500,
                        (1200, p.get("message", "Internal error while processing the request (simulated)")),
                    ),
                )
                return
            elif rule.kind == "error_503":
                headers = [(b"content-type", b"text/plain; charset=utf-8")]
                if p.get("retry_after") is not None:
                    headers.append((b"retry-after", str(p["retry_after"]).encode()))
                await counting_send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": b"Service Unavailable"})
                return
            elif rule.kind == "drop_connection":
                await _drop(send, scope.get(RAW_SEND, send), truncate=p.get("mode") == "truncate")
                return
        await self.app(scope, receive, counting_send)


async def _send_error(send: Any, err: errors.RestError) -> None:
    body = orjson.dumps(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Any, raw_send: Any, *, truncate: bool) -> None:
    """Close the client connection without a (complete) response.

    uvicorn hands the app its per-request cycle's bound ``send`` (``raw_send``, before any
    middleware wrapped it); the cycle owns the transport. Marking the cycle disconnected stops
    uvicorn from answering a 500 on the aborted socket.
    """
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if truncate:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"__entityModel":"', "more_body": True})
        await asyncio.sleep(0.01)
    if transport is not None:
        transport.abort()
        cycle.disconnected = True
    else:  # not under uvicorn (e.g. an ASGI test transport): fail loudly instead of lying
        raise ConnectionAbortedError("simulated dropped connection")
