"""Releasing the shared 4D session (httpx.MockTransport fakes 4D): logout, never a login."""

from __future__ import annotations

import httpx
import pytest

from legacy_sync.fourd import FourDClient, FourDError, FourDSettings
from legacy_sync.fourd.auth import MemorySessionStore

FAST = {"backoff_max_seconds": 0.01, "max_attempts": 1}


def settings() -> FourDSettings:
    return FourDSettings("http://4d.test", "sync", "s3cret", **FAST)  # type: ignore[arg-type]


def fake(logout_status: int) -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/rest/$directory/logout":
            return httpx.Response(logout_status, json={"result": logout_status == 200})
        return httpx.Response(500)

    return seen, httpx.MockTransport(handler)


def test_logout_sends_the_session_cookie_and_forgets_it() -> None:
    store = MemorySessionStore()
    store.save(("WASID4D", "S1"))
    seen, transport = fake(200)
    with FourDClient(settings(), store, transport) as client:
        assert "logged out" in (client.logout() or "")
    [request] = seen
    assert (request.method, request.url.path) == ("GET", "/rest/$directory/logout")
    assert request.headers["Cookie"] == "WASID4D=S1"
    assert store.load() is None


def test_a_session_4d_already_ended_is_forgotten_without_logging_in() -> None:
    store = MemorySessionStore()
    store.save(("WASID4D", "S1"))
    seen, transport = fake(401)
    with FourDClient(settings(), store, transport) as client:
        assert "already ended" in (client.logout() or "")
    assert [r.url.path for r in seen] == ["/rest/$directory/logout"], "no login to log out"
    assert store.load() is None


def test_a_server_without_logout_is_said_so_and_the_session_forgotten() -> None:
    store = MemorySessionStore()
    store.save(("4DSID_ERP", "S1"))
    _, transport = fake(404)
    with FourDClient(settings(), store, transport) as client:
        assert "idle" in (client.logout() or "")
    assert store.load() is None


def test_a_failed_logout_keeps_the_session_to_try_again() -> None:
    store = MemorySessionStore()
    store.save(("WASID4D", "S1"))
    _, transport = fake(503)
    with FourDClient(settings(), store, transport) as client, pytest.raises(FourDError, match="logout"):
        client.logout()
    assert store.load() == ("WASID4D", "S1")


def test_nothing_to_release_sends_nothing() -> None:
    seen, transport = fake(200)
    with FourDClient(settings(), MemorySessionStore(), transport) as client:
        assert client.logout() is None
    assert seen == []
