"""The 4D REST client: one httpx connection pool, one session, one retry layer.

Retry layers are decided on purpose, one per failure kind: this client retries transient
faults (429, 5xx without a query error, timeouts, dropped connections) with exponential
backoff that honours ``Retry-After``, and waits longer on HTTP 402 (no licence left) because
licences free up only when other sessions go idle. Whoever calls the client decides what
outlasts these (the Airflow layer: task retries); httpx itself does not retry.

Reads by key do not trust the server: every page must ascend strictly by key, with no key
twice, and hold only what was asked for (``legacy_sync.fourd.keys``); anything else is a
:class:`PagingError`, never retried, rather than a table landed in part. Every response's
``Date`` header is kept, so callers can ask for the server's today (:meth:`server_date`).
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import tenacity

from legacy_sync.fourd.auth import DEFAULT_SESSION_COOKIES, FourDSessionAuth, MemorySessionStore, SessionStore
from legacy_sync.fourd.errors import FourDError, LicenceExhaustedError, error_from_response
from legacy_sync.fourd.keys import NUMERIC_TYPES, KeyBatchCheck, KeyOrder, KeysetCheck, show, stuck
from legacy_sync.fourd.wire import Page, encoded_length, params_json, parse_page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FourDSettings:
    """How to reach one 4D server (``legacy_sync.hook`` builds it from an Airflow connection)."""

    base_url: str
    username: str | None = None
    password: str | None = None
    page_size: int = 2000
    verify_tls: bool = True
    session_minutes: int = 120
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_attempts: int = 6
    backoff_max_seconds: float = 60.0
    licence_wait_seconds: float = 900.0
    """How long to keep waiting for a free licence (HTTP 402) before failing the task."""
    licence_backoff_seconds: float = 5.0
    """First wait after a 402; doubles up to two minutes."""
    session_cookies: tuple[str, ...] = DEFAULT_SESSION_COOKIES
    """Names of 4D's session cookie (``*`` = prefix); no other cookie is taken for the session."""
    ca_bundle: str | None = None
    """PEM file of the CA(s) to trust instead of the public ones (an internal CA)."""

    def __repr__(self) -> str:  # never print the password
        return f"FourDSettings(base_url={self.base_url!r}, username={self.username!r})"


@dataclass(frozen=True)
class Filter:
    """A ``$filter`` expression with its ``$params`` values (placeholders ``:1``, ``:2``...)."""

    expression: str
    params: tuple[Any, ...] = ()

    def and_(self, expression: str, *params: Any) -> Filter:
        """Append a condition; its placeholders are numbered after ours."""
        shift = len(self.params)
        for i in range(len(params), 0, -1):
            expression = expression.replace(f":{i}", f":{i + shift}")
        joined = f"{self.expression} AND {expression}" if self.expression else expression
        return Filter(joined, self.params + params)


class _RetryPolicy:
    """Wait strategy: ``Retry-After`` when given, else exponential backoff; longer for 402."""

    def __init__(self, settings: FourDSettings) -> None:
        self._settings = settings
        first = min(0.5, settings.backoff_max_seconds)
        self._exponential = tenacity.wait_exponential_jitter(
            multiplier=first, jitter=first, max=settings.backoff_max_seconds
        )

    def should_retry(self, state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None:
            return False
        elapsed = state.seconds_since_start or 0.0
        if isinstance(exc, LicenceExhaustedError):
            return elapsed < self._settings.licence_wait_seconds
        retryable = isinstance(exc, httpx.TransportError) or (isinstance(exc, FourDError) and exc.retryable)
        return retryable and state.attempt_number < self._settings.max_attempts

    def wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self._settings.backoff_max_seconds * 5)
        if isinstance(exc, LicenceExhaustedError):
            return min(self._settings.licence_backoff_seconds * 2 ** (state.attempt_number - 1), 120.0)
        return float(self._exponential(state))

    @staticmethod
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("4D request failed (attempt %d): %s; retrying in %.1fs", state.attempt_number, exc, wait)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class FourDClient:
    """Talks to one 4D REST server through one session. Use as a context manager."""

    def __init__(
        self,
        settings: FourDSettings,
        store: SessionStore | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.auth = FourDSessionAuth(
            settings.base_url,
            settings.username,
            settings.password,
            settings.session_minutes,
            store or MemorySessionStore(),
            settings.session_cookies,
        )
        self._retry = _RetryPolicy(settings)
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            auth=self.auth,
            verify=ssl.create_default_context(cafile=settings.ca_bundle)
            if settings.verify_tls and settings.ca_bundle
            else settings.verify_tls,
            transport=transport,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            headers={"Accept": "application/json"},
            follow_redirects=False,
            event_hooks={"response": [self._note_response]},
        )
        self._answered = False
        self._server_clock: str | None = None
        self._key_orders: dict[tuple[str, str], KeyOrder] = {}

    def __enter__(self) -> FourDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # The session stays open on purpose: the next task or run reuses its licence.
        self._http.close()

    # -- the server's clock -----------------------------------------------------------------
    def _note_response(self, response: httpx.Response) -> None:
        # Every response, logins and retried ones included, goes through here.
        self._answered = True
        clock = response.headers.get("Date")
        if clock:
            self._server_clock = clock

    def server_date(self) -> dt.date | None:
        """4D's today by its own clock: the date in the ``Date`` header of the most recent
        response that had one (a ``$catalog`` read first if nothing was asked yet); None when
        the server sends no usable ``Date``.

        A date watermark must not move past this day, whatever the worker's clock says. The
        header is in GMT, while 4D dates carry no time zone at all (they are the ERP users'
        local days), so the two can differ by a day either way: callers keep a day of slack.
        """
        if not self._answered:
            self.get_bytes("/rest/$catalog", what="read 4D $catalog (for the server's date)")
        if self._server_clock is None:
            return None
        try:
            return parsedate_to_datetime(self._server_clock).date()
        except (TypeError, ValueError):
            log.warning("4D sent a Date header that is not an HTTP date: %r", self._server_clock)
            return None

    def logout(self) -> str | None:
        """Release the shared 4D session (its licence) now; ``None`` if none is stored."""
        return self.auth.logout(self._http)

    # -- raw requests -----------------------------------------------------------------------
    def get_bytes(self, path: str, params: dict[str, str] | None = None, *, what: str | None = None) -> bytes:
        """GET ``path`` with the retry policy; return the body of a 2xx answer."""
        what = what or f"GET {path}"
        for attempt in tenacity.Retrying(
            retry=self._retry.should_retry,
            wait=self._retry.wait,
            before_sleep=self._retry.before_sleep,
            reraise=True,
        ):
            with attempt:
                response = self._http.get(path, params=params)
                if response.status_code >= 400:
                    error = error_from_response(response, what)
                    error.retry_after = _retry_after_seconds(response)  # type: ignore[attr-defined]
                    raise error
                return response.content
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str, params: dict[str, str] | None = None, *, what: str | None = None) -> Any:
        content = self.get_bytes(path, params, what=what)
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise FourDError(f"{what or path}: 4D sent a body that is not JSON: {content[:120]!r}") from exc

    # -- catalog ----------------------------------------------------------------------------
    def catalog(self) -> list[str]:
        """Names of the dataclasses this session may read."""
        body = self.get_json("/rest/$catalog", what="read 4D $catalog")
        return [dc["name"] for dc in body.get("dataClasses", []) if isinstance(dc, dict) and "name" in dc]

    def attributes(self, dataclass: str) -> dict[str, dict[str, Any]]:
        """The attributes 4D exposes for a dataclass, by name."""
        body = self.get_json(f"/rest/$catalog/{dataclass}", what=f"read 4D $catalog/{dataclass}")
        return {a["name"]: a for a in body.get("attributes", []) if isinstance(a, dict) and "name" in a}

    # -- collections ------------------------------------------------------------------------
    def page(
        self,
        dataclass: str,
        *,
        attributes: tuple[str, ...] | None = None,
        where: Filter | None = None,
        order_by: str | None = None,
        top: int | None = None,
        skip: int | None = None,
    ) -> Page:
        """One collection request."""
        params: dict[str, str] = {}
        if where and where.expression:
            params["$filter"] = f'"{where.expression}"'
            if where.params:
                params["$params"] = params_json(list(where.params))
        if order_by:
            params["$orderby"] = f'"{order_by}"'
        if attributes:
            params["$attributes"] = ",".join(attributes)
        if top is not None:
            params["$top"] = str(top)
        if skip:
            params["$skip"] = str(skip)
        what = f"read 4D {dataclass}"
        return parse_page(self.get_bytes(f"/rest/{dataclass}", params, what=what), what)

    def iter_by_key(
        self,
        dataclass: str,
        key: str,
        *,
        attributes: tuple[str, ...] | None = None,
        where: Filter | None = None,
        page_size: int | None = None,
        after: Any = None,
    ) -> Iterator[Page]:
        """Keyset paging, checked: ``key >= last`` sorted by key, so inserts and deletes while
        paging neither shift nor repeat rows (``$skip`` over an unsorted selection does both).

        The server is not trusted. Each page must ascend strictly by key, so a server or proxy
        that drops ``$orderby`` (which would land a fraction of the table) or sends a key twice
        fails with a :class:`PagingError`, as does one that ignores the key filter.

        Twins: a legacy table may hold two records with the same key, and ``key > last`` would
        skip the second one at a page boundary. So each page after the first asks
        ``key >= last`` with one more record than the page size: the boundary record comes
        back first and is dropped (``Page.reread``), and a twin comes back next to it and fails
        as a duplicate key. This costs one record per page and no extra request; counting the
        boundary key (``key = last``) would cost a request per page. The re-read record also
        checks the sort: an unsorted answer rarely starts with it. If the boundary record was
        deleted meanwhile it is simply not there; a twin left alone by that very deletion is
        the one case this cannot see.

        ``after``: resume after this key (in the key's type; a record holding it is skipped).
        The end is an empty page or a page that holds the whole remaining selection
        (``__COUNT``); a short page alone is not trusted, since servers cap page sizes.
        Completeness: the first page's ``count`` is the selection's size; each later page's
        ``count - reread`` is what was left of it, this page included.
        """
        size = page_size or self.settings.page_size
        what = f"read 4D {dataclass}"
        check = KeysetCheck(what, dataclass, key)
        last = after
        while True:
            condition = where or Filter("")
            top = size
            if last is not None:
                condition = condition.and_(f"{key}>=:1", last)
                top = size + 1
            page = self.page(
                dataclass, attributes=attributes, where=condition, order_by=f"{key} asc", top=top
            )
            if not page.entities:
                return
            fresh, reread = check.new_records(page.entities, last)
            whole = page.count is not None and page.count <= len(page.entities)
            if not fresh:  # only the boundary record came back
                if whole or page.count is None:
                    return
                raise stuck(what, key, last, page.count, f"{key} >= {show(last)}, $top={top}")
            yield replace(page, entities=fresh, reread=reread)
            if whole:
                return
            last = check.last

    def get_records(
        self,
        dataclass: str,
        key: str,
        keys: Iterable[Any],
        *,
        attributes: tuple[str, ...] | None = None,
        batch_size: int = 500,
    ) -> Iterator[Page]:
        """The records whose ``key`` is one of ``keys``, sorted by key, in pages.

        One request per batch of up to ``batch_size`` keys, ``$filter="key in :1"`` with the
        keys as ``$params``; batches also stay under ~4,000 URL characters of keys, well below
        the 8 KB URL limit of common servers and proxies. ``keys`` may be numbers or text
        (a landed ``legacy_id`` such as ``"42"``); they are sent in the key attribute's type
        from 4D's catalog. Keys 4D does not return are simply absent: the record is gone.

        The answer is checked like :meth:`iter_by_key`'s pages: sorted, each key at most once
        (two records sharing a key fail as a duplicate key), nothing that was not asked for
        (a server or proxy dropping the filter). A batch the server cuts short is asked again
        for what is missing plus its last record, whose twin could otherwise hide past the cut.
        """
        what = f"read 4D {dataclass} by key"
        wanted = list(keys)
        if not wanted:
            return
        order = self._key_order(dataclass, key, what)
        unique: dict[Any, Any] = {}
        for raw in wanted:
            try:
                value = order.value(raw)
            except ValueError as exc:
                kind = "numeric" if order.numeric else "text"
                raise ValueError(f"{what}: {exc}, but 4D's {key} is {kind}") from None
            unique.setdefault(order.sort_key(value), value)
        for batch in _batches([unique[s] for s in sorted(unique)], batch_size):
            check = KeyBatchCheck(what, dataclass, key, order, batch)
            while check.pending:
                asked = check.next_request()
                page = self.page(
                    dataclass,
                    attributes=attributes,
                    where=Filter(f"{key} in :1", (asked,)),
                    order_by=f"{key} asc",
                    top=len(asked),
                )
                fresh = check.accept(page.entities, asked)
                if not fresh:
                    if page.entities and page.count is not None and page.count > len(page.entities):
                        raise stuck(what, key, check.boundary, page.count, f"{key} in :1, {len(asked)} keys")
                    break
                yield replace(page, entities=fresh, reread=len(page.entities) - len(fresh))
                if page.count is not None and page.count <= len(page.entities):
                    break
                # A short answer: ask again for the rest (without __COUNT, until nothing new comes).

    def _key_order(self, dataclass: str, key: str, what: str) -> KeyOrder:
        """Numbers or text, from 4D's catalog (read once per dataclass and client)."""
        order = self._key_orders.get((dataclass, key))
        if order is None:
            attribute = self.attributes(dataclass).get(key)
            if attribute is None:
                raise FourDError(
                    f"{what}: 4D's catalog of {dataclass} has no attribute {key}; check the name "
                    "(case-sensitive) and that it is exposed as a REST resource."
                )
            order = KeyOrder(numeric=attribute.get("type") in NUMERIC_TYPES)
            self._key_orders[(dataclass, key)] = order
        return order

    def iter_deleted(
        self, dataclass: str, stamp_from: int, stamp_to: int, page_size: int | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """``__DeletedRecords`` rows of one dataclass with ``stamp_from <= __Stamp < stamp_to``.

        The window is closed at both ends and the table is append-only, so ``$skip`` paging
        over it, sorted, is stable.
        """
        size = page_size or self.settings.page_size
        where = Filter("__TableName=:1 AND __Stamp>=:2 AND __Stamp<:3", (dataclass, stamp_from, stamp_to))
        skip = 0
        while True:
            page = self.page("__DeletedRecords", where=where, order_by="__Stamp asc", top=size, skip=skip)
            if not page.entities:
                return
            yield page.entities
            skip += len(page.entities)
            if page.count is not None and skip >= page.count:
                return


MAX_KEYS_URL_CHARS = 4000
"""URL characters one ``key in :1`` request may spend on its keys."""


def _batches(values: list[Any], size: int) -> Iterator[list[Any]]:
    """``values`` in order, cut every ``size`` values or :data:`MAX_KEYS_URL_CHARS` characters."""
    batch: list[Any] = []
    length = 0
    for value in values:
        cost = encoded_length(value) + 3  # and a percent-encoded comma
        if batch and (len(batch) >= size or length + cost > MAX_KEYS_URL_CHARS):
            yield batch
            batch, length = [], 0
        batch.append(value)
        length += cost
    if batch:
        yield batch
