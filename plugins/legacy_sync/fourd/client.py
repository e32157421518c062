"""The 4D REST client: one httpx connection pool, one session, one retry layer.

Retry layers are decided on purpose (docs/style.md habit 4): this client retries transient
faults (429, 5xx without a query error, timeouts, dropped connections) with exponential
backoff that honours ``Retry-After``, and waits longer on HTTP 402 (no licence left) because
licences free up only when other sessions go idle. Airflow's task retries sit on top for
what outlasts these; httpx itself does not retry.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import tenacity

from legacy_sync.fourd.auth import DEFAULT_SESSION_COOKIES, FourDSessionAuth, MemorySessionStore, SessionStore
from legacy_sync.fourd.errors import FourDError, LicenceExhaustedError, error_from_response
from legacy_sync.fourd.wire import Page, entity_key, params_json, parse_page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FourDSettings:
    """How to reach one 4D server; built from the Airflow connection by the hook."""

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
        )

    def __enter__(self) -> FourDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # The session stays open on purpose: the next task or run reuses its licence.
        self._http.close()

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
        """Keyset paging: ``key > last`` sorted by key, so inserts and deletes while paging
        neither shift nor repeat rows (``$skip`` over an unsorted selection does both).

        The end is an empty page or a page that holds the whole remaining selection
        (``__COUNT``); a short page alone is not trusted, since servers cap page sizes.
        """
        size = page_size or self.settings.page_size
        last = after
        while True:
            condition = where or Filter("")
            if last is not None:
                condition = condition.and_(f"{key}>:1", last)
            page = self.page(
                dataclass, attributes=attributes, where=condition, order_by=f"{key} asc", top=size
            )
            if not page.entities:
                return
            first_key = entity_key(page.entities[0], key)
            if last is not None and first_key is not None and _as_number(first_key) <= _as_number(last):
                raise FourDError(
                    f"read 4D {dataclass}: the server ignored the key filter ({key} > {last} returned "
                    f"{first_key}); refusing to page on, it would repeat records forever"
                )
            yield page
            last = _as_number(entity_key(page.entities[-1], key))
            if page.count is not None and page.count <= len(page.entities):
                return

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


def _as_number(value: Any) -> Any:
    """4D sends ``__KEY`` as a string even for numeric keys; compare numbers as numbers."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value
