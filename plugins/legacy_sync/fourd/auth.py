"""4D session authentication: log in once, reuse the session cookie, log in again on 401.

Every 4D REST session holds a client licence until it has been idle for its timeout (60+
minutes), so a request without the session cookie costs a licence. The cookie is therefore
kept in a :class:`SessionStore` shared by every task and run, and a new login happens only
when there is no cookie yet or 4D refuses the one we have.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Generator, Iterator
from typing import Protocol

import httpx
import orjson

from legacy_sync.fourd.errors import FourDError, error_from_response

log = logging.getLogger(__name__)

Cookie = tuple[str, str]
"""(name, value): the name differs by 4D version (``WASID4D``, ``4DSID_<AppName>``)."""


class SessionStore(Protocol):
    """Where the 4D session cookie lives between requests, tasks and runs."""

    def load(self) -> Cookie | None: ...

    def save(self, cookie: Cookie) -> None: ...

    def discard(self, cookie: Cookie) -> None:
        """Forget ``cookie`` unless another worker has already replaced it."""

    def login_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while logging in, so concurrent tasks open one session, not one each."""


class MemorySessionStore:
    """A process-local store (tests, the CLI's probe)."""

    def __init__(self) -> None:
        self._cookie: Cookie | None = None
        self._lock = threading.RLock()

    def load(self) -> Cookie | None:
        return self._cookie

    def save(self, cookie: Cookie) -> None:
        self._cookie = cookie

    def discard(self, cookie: Cookie) -> None:
        if self._cookie == cookie:
            self._cookie = None

    @contextlib.contextmanager
    def login_lock(self) -> Iterator[None]:
        with self._lock:
            yield


def pick_session_cookie(response: httpx.Response) -> Cookie | None:
    """The session cookie a 4D response sets, whatever this version calls it."""
    cookies = [(c.name, c.value) for c in response.cookies.jar]
    for name, value in cookies:
        if name == "WASID4D" or name.startswith("4DSID"):
            return name, value
    return cookies[0] if cookies else None


class FourDSessionAuth(httpx.Auth):
    """An ``httpx.Auth`` flow for 4D's ``POST /rest/$directory/login`` sessions."""

    requires_response_body = True

    def __init__(
        self,
        base_url: str,
        username: str | None,
        password: str | None,
        session_minutes: int,
        store: SessionStore,
    ) -> None:
        self._login_url = f"{base_url.rstrip('/')}/rest/$directory/login"
        self._username = username or None
        self._password = password or ""
        # 4D ignores lengths under 60 minutes.
        self._session_minutes = max(60, int(session_minutes))
        self.store = store
        self.logins = 0
        self._cookie: Cookie | None = None  # cached: the store is read once, not per request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        cookie = self._cookie or self.store.load()
        if cookie is None and self._username:
            cookie = yield from self._login_once(stale=None)
        self._cookie = cookie
        self._apply(request, cookie)
        response = yield request
        if response.status_code == 401 and self._username:
            # The session expired or the server restarted: one fresh login, then the request again.
            log.info("4D refused the session (HTTP 401); logging in again")
            cookie = yield from self._login_once(stale=cookie)
            self._apply(request, cookie)
            response = yield request
        self._remember_implicit_session(response, cookie)

    def _login_once(self, stale: Cookie | None) -> Generator[httpx.Request, httpx.Response, Cookie]:
        with self.store.login_lock():
            current = self.store.load()
            if current is not None and current != stale:
                self._cookie = current
                return current  # another task logged in while we waited
            if stale is not None:
                self.store.discard(stale)
            login = httpx.Request(
                "POST",
                self._login_url,
                headers={
                    "username-4D": self._username or "",
                    "password-4D": self._password,
                    "session-4D-length": str(self._session_minutes),
                },
            )
            response = yield login
            self.logins += 1
            if response.status_code >= 400:
                raise error_from_response(response, "4D login")
            try:
                accepted = orjson.loads(response.content).get("result") is True
            except (orjson.JSONDecodeError, AttributeError):
                accepted = False
            if not accepted:
                raise FourDError(
                    f"4D login refused for user {self._username!r}: check the login and password of the "
                    "`legacy_4d_default` connection and that the user may open REST sessions.",
                    status=response.status_code,
                )
            cookie = pick_session_cookie(response)
            if cookie is None:
                raise FourDError("4D accepted the login but set no session cookie; is this a 4D REST server?")
            self.store.save(cookie)
            self._cookie = cookie
            log.info("opened a 4D session (cookie %s)", cookie[0])
            return cookie

    def _remember_implicit_session(self, response: httpx.Response, used: Cookie | None) -> None:
        # Open-access servers give a (licence-holding) guest session to the first request.
        new = pick_session_cookie(response)
        if new is not None and new != used:
            self.store.save(new)
            self._cookie = new

    @staticmethod
    def _apply(request: httpx.Request, cookie: Cookie | None) -> None:
        if cookie is not None:
            request.headers["Cookie"] = f"{cookie[0]}={cookie[1]}"
        else:
            request.headers.pop("Cookie", None)
