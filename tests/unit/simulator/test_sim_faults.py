"""Fault injection (checklist 30) through Python and the HTTP control API. Faults are off by default."""

from __future__ import annotations

import time

import httpx
import pytest
from sim_helpers import rest

pytestmark = pytest.mark.faults


def test_item30_faults_off_by_default(make_server) -> None:
    """Checklist 30: no fault unless asked for."""
    sim = make_server()
    with rest(sim) as c:
        assert all(c.get("/Orders", params={"$top": 5}).status_code == 200 for _ in range(20))
    assert sim.faults.active() == []


def test_item30_transient_500_and_503_bursts(make_server) -> None:
    """Checklist 30: next-N and every-Nth 500 __ERROR / 503 bursts, optionally for one table."""
    sim = make_server()
    with rest(sim) as c:
        sim.faults.set("error_500", count=2, table="Orders")
        assert c.get("/Products", params={"$top": 1}).status_code == 200
        r = c.get("/Orders")
        assert r.status_code == 500
        assert r.json()["__ERROR"][0]["componentSignature"] == "dbmg"
        assert c.get("/Orders").status_code == 500
        assert c.get("/Orders").status_code == 200
        sim.faults.set("error_503", every=3, retry_after=2)
        codes = [c.get("/Customers", params={"$top": 1}) for _ in range(6)]
        assert [r.status_code for r in codes] == [200, 200, 503, 200, 200, 503]
        assert codes[2].headers["retry-after"] == "2"
        sim.faults.clear()
        assert c.get("/Customers").status_code == 200
    assert sim.stats.faults_fired["error_500"] == 2


def test_item30_dropped_connections(make_server) -> None:
    """Checklist 30: a connection closed without a response, or with a truncated body."""
    sim = make_server()
    with rest(sim) as c:
        sim.faults.set("drop_connection", count=1)
        with pytest.raises(httpx.TransportError):
            c.get("/Products")
        sim.faults.set("drop_connection", count=1, mode="truncate")
        with pytest.raises(httpx.TransportError):
            c.get("/Products")
        assert c.get("/Products", params={"$top": 1}).status_code == 200


def test_item30_slow_responses_on_large_pages(make_server) -> None:
    """Checklist 30: slow responses (only for large $top here) -> client timeouts."""
    sim = make_server()
    sim.faults.set("slow", delay=0.6, min_top=1000)
    with rest(sim) as c:
        t0 = time.monotonic()
        c.get("/Orders", params={"$top": 10})
        assert time.monotonic() - t0 < 0.5
        with pytest.raises(httpx.ReadTimeout):
            c.get("/Orders", params={"$top": 1000}, timeout=0.2)


def test_item30_licence_burst_and_session_expiry(make_server) -> None:
    """Checklist 30: 402 bursts (logins too) and invalidating all sessions now / after N requests."""
    sim = make_server(username="u", password="p")
    with rest(sim) as c:
        sim.faults.set("licence_burst", count=2)
        r = c.post("/$directory/login", headers={"username-4D": "u", "password-4D": "p"})
        assert r.status_code == 402
        assert r.json()["__ERROR"][0]["errCode"] == 1823
        assert c.get("/Products").status_code == 402
        assert c.post("/$directory/login", headers={"username-4D": "u", "password-4D": "p"}).json()["result"]
        assert c.get("/Products", params={"$top": 1}).status_code == 200
        sim.faults.set("expire_sessions")
        assert c.get("/Products", params={"$top": 1}).status_code == 401
        c.post("/$directory/login", headers={"username-4D": "u", "password-4D": "p"})
        sim.faults.set("expire_sessions", after=2)
        assert c.get("/Products", params={"$top": 1}).status_code == 200
        assert c.get("/Products", params={"$top": 1}).status_code == 401


def test_item30_page_cap_and_refused_table(make_server) -> None:
    """Checklist 30 / 2.3: server-side page cap (fewer than $top sent) and a table that always fails."""
    sim = make_server(max_page_size=50)
    with rest(sim) as c:
        body = c.get("/OrderLines", params={"$top": 1000}).json()
        assert body["__SENT"] == 50
        assert body["__COUNT"] > 1000
        sim.faults.set("page_cap", max=7)
        assert c.get("/OrderLines", params={"$top": 1000}).json()["__SENT"] == 7
        sim.faults.set("refuse_table", table="Invoices")
        assert c.get("/Invoices").status_code == 500
        sim.faults.set("refuse_table", table="Inventory", hidden=True)
        assert c.get("/Inventory").json()["__ERROR"][0]["errCode"] == 1800


def test_faults_over_http_control_api(make_server) -> None:
    """POST/GET/DELETE /_sim/faults switch faults for out-of-process use."""
    sim = make_server()
    base = sim.base_url
    r = httpx.post(base + "/_sim/faults", json={"kind": "error_503", "count": 1})
    assert r.status_code == 200
    assert r.json()["faults"][0]["kind"] == "error_503"
    assert httpx.get(base + "/rest/Products").status_code == 503
    httpx.post(base + "/_sim/faults", json=[{"kind": "error_500", "every": 1}])
    assert httpx.delete(base + "/_sim/faults").json() == {"faults": []}
    assert httpx.get(base + "/rest/Products").status_code == 200
    assert httpx.post(base + "/_sim/faults", json={"kind": "meteor"}).status_code == 400
    stats = httpx.get(base + "/_sim/stats").json()
    assert stats["requests_by_status"]["503"] == 1
    sim.reset_stats()
    assert sim.stats.requests == 0
