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

from legacy_sync.fourd.errors import FourDError, LoginRefusedError, error_from_response

log = logging.getLogger(__name__)

Cookie = tuple[str, str]
"""(name, value): the name differs by 4D version (``WASID4D``, ``4DSID_<AppName>``)."""

DEFAULT_SESSION_COOKIES: tuple[str, ...] = ("WASID4D", "4DSID_*")
"""Names a 4D session cookie may have; a trailing ``*`` matches any name with that prefix.

Only such a cookie is the 4D session. Anything else a server or a load balancer in front of it
sets (a stickiness cookie, say) is sent back as a browser would, never stored as the session:
taking a balancer's cookie for the session would make every request log in again (a licence each).
"""


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


def is_session_cookie(name: str, patterns: tuple[str, ...] = DEFAULT_SESSION_COOKIES) -> bool:
    """Whether ``name`` is a 4D session cookie's name (see :data:`DEFAULT_SESSION_COOKIES`)."""
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def pick_session_cookie(
    response: httpx.Response, patterns: tuple[str, ...] = DEFAULT_SESSION_COOKIES
) -> Cookie | None:
    """The 4D session cookie a response sets, if any; other cookies are not a session."""
    for cookie in response.cookies.jar:
        if cookie.value is not None and is_session_cookie(cookie.name, patterns):
            return cookie.name, cookie.value
    return None


def _cookie_pairs(header: str | None) -> list[tuple[str, str]]:
    pairs = []
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            pairs.append((name, value))
    return pairs


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
        session_cookies: tuple[str, ...] = DEFAULT_SESSION_COOKIES,
    ) -> None:
        self._login_url = f"{base_url.rstrip('/')}/rest/$directory/login"
        self._logout_url = f"{base_url.rstrip('/')}/rest/$directory/logout"
        self._session_cookies = tuple(session_cookies) or DEFAULT_SESSION_COOKIES
        self._username = username or None
        self._password = password or ""
        # 4D ignores lengths under 60 minutes.
        self._session_minutes = max(60, int(session_minutes))
        self.store = store
        self._cookie: Cookie | None = None  # cached: the store is read once, not per request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        cookie = self._cookie or self.store.load()
        if cookie is None and self._username:
            cookie = yield from self._login_once(stale=None, request=request)
        self._cookie = cookie
        self._apply(request, cookie)
        response = yield request
        if response.status_code == 401 and self._username:
            # The session expired or the server restarted: one fresh login, then the request again.
            log.info("4D refused the session (HTTP 401); logging in again")
            cookie = yield from self._login_once(stale=cookie, request=request)
            self._apply(request, cookie, response)
            response = yield request
        self._remember_implicit_session(response, cookie)

    def _login_once(
        self, stale: Cookie | None, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, Cookie]:
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
            # Other cookies (a load balancer's stickiness cookie) go along, as from a browser.
            self._apply(login, None, source=request)
            response = yield login
            self._apply(request, None, response)  # keep what the login answer set (not the session)
            if response.status_code >= 400:
                raise error_from_response(response, "4D login")
            try:
                accepted = orjson.loads(response.content).get("result") is True
            except (orjson.JSONDecodeError, AttributeError):
                accepted = False
            if not accepted:
                raise LoginRefusedError(
                    f"4D login refused for user {self._username!r}: check the login and password and "
                    "that the user may open REST sessions.",
                    status=response.status_code,
                )
            cookie = pick_session_cookie(response, self._session_cookies)
            if cookie is None:
                others = sorted({c.name for c in response.cookies.jar})
                raise FourDError(
                    "4D accepted the login but set no session cookie named "
                    f"{' or '.join(self._session_cookies)} (cookies set: {', '.join(others) or 'none'}). "
                    "If this 4D server names its session cookie differently, list the name in the "
                    "connection's `session_cookie_names` extra."
                )
            self.store.save(cookie)
            self._cookie = cookie
            log.info("opened a 4D session (cookie %s)", cookie[0])
            return cookie

    def logout(self, http: httpx.Client) -> str | None:
        """Log the shared session out of 4D (``GET $directory/logout``) and forget it.

        Frees its client licence now instead of after the idle timeout. Returns ``None`` when no
        session is stored, else what happened. Never logs in (a 401 means 4D already ended the
        session). The session is kept when 4D could not be reached or failed, so it can be retried.
        """
        with self.store.login_lock():
            cookie = self.store.load()
            if cookie is None:
                return None
            request = http.build_request("GET", self._logout_url)
            self._apply(request, cookie)
            response = http.send(request, auth=None)  # no auth flow: a 401 must not log in again
            if response.status_code == 200:
                outcome = "logged out; its 4D licence is free"
            elif response.status_code == 401:
                outcome = "4D had already ended it"
            elif 400 <= response.status_code < 500:
                outcome = (
                    f"this 4D server does not offer $directory/logout (HTTP {response.status_code}); "
                    "its licence frees when the session has been idle for its timeout"
                )
            else:
                raise error_from_response(response, "4D logout")
            self.store.discard(cookie)
            self._cookie = None
            log.info("released the 4D session (cookie %s): %s", cookie[0], outcome)
            return outcome

    def _remember_implicit_session(self, response: httpx.Response, used: Cookie | None) -> None:
        # Open-access servers give a (licence-holding) guest session to the first request.
        new = pick_session_cookie(response, self._session_cookies)
        if new is not None and new != used:
            self.store.save(new)
            self._cookie = new

    def _apply(
        self,
        request: httpx.Request,
        cookie: Cookie | None,
        response: httpx.Response | None = None,
        source: httpx.Request | None = None,
    ) -> None:
        """Set ``request``'s Cookie header: its other cookies as they are, our session cookie last.

        httpx's cookie jar already put every cookie it holds for this URL in the header (as a
        browser would, a balancer's stickiness cookie included); only session-named cookies are
        replaced by the one session all tasks share. ``source`` supplies the other cookies when
        ``request`` is one we built (the login); ``response`` updates them with what it set.
        """
        header = (source or request).headers.get("Cookie")
        others = dict((name, value) for name, value in _cookie_pairs(header) if not self._is_session(name))
        if response is not None:
            for c in response.cookies.jar:
                if not self._is_session(c.name) and c.value is not None:
                    others[c.name] = c.value
        pairs = [f"{name}={value}" for name, value in others.items()]
        if cookie is not None:
            pairs.append(f"{cookie[0]}={cookie[1]}")
        if pairs:
            request.headers["Cookie"] = "; ".join(pairs)
        else:
            request.headers.pop("Cookie", None)

    def _is_session(self, name: str) -> bool:
        return is_session_cookie(name, self._session_cookies)
