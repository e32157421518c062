"""Only a 4D session cookie is the 4D session (httpx.MockTransport fakes 4D and a balancer).

A load balancer in front of 4D sets its own stickiness cookie on every answer. The client must
send it back (as a browser would) and never take it for the 4D session: that made every request
log in again, each login costing a 4D client licence.
"""

from __future__ import annotations

import itertools

import httpx
import orjson
import pytest

from legacy_sync.fourd import FourDClient, FourDError, FourDSettings
from legacy_sync.fourd.auth import MemorySessionStore, is_session_cookie

FAST = {"backoff_max_seconds": 0.01, "licence_backoff_seconds": 0.01, "licence_wait_seconds": 1.0}
CATALOG = {"dataClasses": [{"name": "Products"}]}


def settings(**overrides: object) -> FourDSettings:
    values = {"base_url": "http://4d.test", "username": "sync", "password": "s3cret", **FAST, **overrides}
    return FourDSettings(**values)  # type: ignore[arg-type]


def cookies_of(request: httpx.Request) -> dict[str, str]:
    pairs = (p.strip().partition("=") for p in (request.headers.get("Cookie") or "").split(";") if p.strip())
    return {name: value for name, _, value in pairs}


class BalancedFourD:
    """4D (session cookie ``session_cookie``) behind a balancer that sets ``LBSTICKY`` on every answer."""

    def __init__(self, session_cookie: str = "4DSID_ERP", open_access: bool = False) -> None:
        self.session_cookie = session_cookie
        self.open_access = open_access
        self.logins = 0
        self.sessions: set[str] = set()
        self.requests: list[httpx.Request] = []
        self._lb = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._fourd(request)
        # The balancer pins the client to a node with a cookie of its own, renewed on every answer.
        sticky = ("Set-Cookie", f"LBSTICKY=node1.{next(self._lb)}; Path=/")
        return httpx.Response(
            answer.status_code, content=answer.content, headers=[*answer.headers.multi_items(), sticky]
        )

    def _new_session(self) -> str:
        value = f"S{len(self.sessions) + 1}"
        self.sessions.add(value)
        return value

    def _fourd(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/rest/$directory/login":
            if request.headers.get("password-4D") != "s3cret":
                return httpx.Response(200, json={"result": False})
            self.logins += 1
            value = self._new_session()
            return httpx.Response(
                200, json={"result": True}, headers={"Set-Cookie": f"{self.session_cookie}={value}; Path=/"}
            )
        session = cookies_of(request).get(self.session_cookie)
        if session not in self.sessions:
            if self.open_access:  # a guest session for whoever comes without one
                value = self._new_session()
                return httpx.Response(
                    200,
                    content=orjson.dumps(CATALOG),
                    headers={"Set-Cookie": f"{self.session_cookie}={value}; Path=/"},
                )
            return httpx.Response(401, json={"__ERROR": [{"message": "Permissions error", "errCode": 1822}]})
        return httpx.Response(200, content=orjson.dumps(CATALOG))


def test_a_balancer_cookie_is_sent_back_but_never_becomes_the_session() -> None:
    fourd = BalancedFourD()
    store = MemorySessionStore()
    with FourDClient(settings(), store, httpx.MockTransport(fourd)) as client:
        for _ in range(10):
            assert client.catalog() == ["Products"]
    assert fourd.logins == 1, "10 requests must share one 4D session (one licence)"
    assert store.load() == ("4DSID_ERP", "S1")
    data_requests = [r for r in fourd.requests if r.url.path == "/rest/$catalog"]
    assert len(data_requests) == 10
    for request in data_requests:
        sent = cookies_of(request)
        assert sent["4DSID_ERP"] == "S1"
        assert "LBSTICKY" in sent, "the balancer's cookie goes back, as from a browser"
    # The balancer renews its cookie on every answer: the client sends the latest one.
    assert cookies_of(data_requests[-1])["LBSTICKY"] == "node1.10"


def test_a_session_shared_by_another_worker_keeps_the_balancer_cookie() -> None:
    fourd = BalancedFourD(session_cookie="WASID4D")
    store = MemorySessionStore()
    with FourDClient(settings(), store, httpx.MockTransport(fourd)) as first:
        first.catalog()
    with FourDClient(settings(), store, httpx.MockTransport(fourd)) as second:
        for _ in range(3):
            second.catalog()
    assert fourd.logins == 1 and store.load() == ("WASID4D", "S1")


def test_relogin_after_expiry_sends_the_balancer_cookie_with_the_login() -> None:
    fourd = BalancedFourD()
    store = MemorySessionStore()
    with FourDClient(settings(), store, httpx.MockTransport(fourd)) as client:
        client.catalog()
        fourd.sessions.clear()  # 4D restarted: the session is gone
        client.catalog()
    assert fourd.logins == 2 and store.load() == ("4DSID_ERP", "S1")  # S1 again: the set was cleared
    second_login = [r for r in fourd.requests if r.url.path == "/rest/$directory/login"][1]
    assert "LBSTICKY" in cookies_of(second_login)
    assert "4DSID_ERP" not in cookies_of(second_login), "the stale session is not sent to the login"


def test_an_open_access_server_behind_a_balancer_keeps_one_guest_session() -> None:
    fourd = BalancedFourD(open_access=True)
    store = MemorySessionStore()
    with FourDClient(settings(username=None, password=None), store, httpx.MockTransport(fourd)) as client:
        for _ in range(5):
            client.catalog()
    assert store.load() == ("4DSID_ERP", "S1"), "the balancer's cookie is never stored as the session"
    assert len(fourd.sessions) == 1


def test_a_login_that_sets_only_other_cookies_fails_and_names_the_setting() -> None:
    fourd = BalancedFourD(session_cookie="MYAPPSESSION")
    with (
        FourDClient(settings(), MemorySessionStore(), httpx.MockTransport(fourd)) as client,
        pytest.raises(FourDError, match="session_cookie_names") as failure,
    ):
        client.catalog()
    assert "LBSTICKY" in str(failure.value) and "MYAPPSESSION" in str(failure.value)
    assert "node1" not in str(failure.value), "cookie values never appear in messages"


def test_the_session_cookie_names_are_configurable() -> None:
    fourd = BalancedFourD(session_cookie="MYAPPSESSION")
    store = MemorySessionStore()
    custom = settings(session_cookies=("MYAPP*",))
    with FourDClient(custom, store, httpx.MockTransport(fourd)) as client:
        for _ in range(3):
            client.catalog()
    assert fourd.logins == 1 and store.load() == ("MYAPPSESSION", "S1")


def test_session_cookie_names() -> None:
    assert is_session_cookie("WASID4D") and is_session_cookie("4DSID_LegacyERP")
    for other in ("LBSTICKY", "AWSALB", "WASID4D2", "4DSID", "wasid4d", "JSESSIONID"):
        assert not is_session_cookie(other), other
