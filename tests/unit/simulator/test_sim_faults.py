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


def _ids(r: httpx.Response, pk: str) -> list[int]:
    assert r.status_code == 200, r.text
    return [e[pk] for e in r.json()["__ENTITIES"]]


def test_ignore_orderby_serves_unsorted_pages_but_honours_filter_top_skip_count(make_server) -> None:
    """ignore_orderby: $orderby dropped (scrambled order) while $filter/$top/$skip/__COUNT still hold."""
    sim = make_server(shuffle_unsorted=False)  # even where unsorted would mean key order
    q = {
        "$filter": '"CustomerID>:1"',
        "$params": "'[10]'",
        "$orderby": "CustomerID asc",
        "$top": 50,
        "$attributes": "CustomerID",
    }
    with rest(sim) as c:
        assert _ids(c.get("/Customers", params=q), "CustomerID") == list(range(11, 61))
        count = c.get("/Customers", params=q).json()["__COUNT"]
        sim.faults.set("ignore_orderby", table="Customers")
        pages, skip = [], 0
        while skip < count:
            r = c.get("/Customers", params={**q, "$skip": skip})
            assert r.json()["__COUNT"] == count
            assert r.json()["__FIRST"] == skip
            pages.append(_ids(r, "CustomerID"))
            skip += 50
        assert pages[0] != sorted(pages[0])
        assert len(pages[0]) == 50
        seen = [k for page in pages for k in page]
        assert sorted(seen) == list(range(11, 11 + count))  # every record once, none filtered out
        other = c.get("/Orders", params={"$orderby": "OrderID desc", "$top": 5, "$attributes": "OrderID"})
        assert _ids(other, "OrderID") == sorted(_ids(other, "OrderID"), reverse=True)
        c.get("/Customers", params={"$top": 5})  # no $orderby: nothing to ignore, not counted
        assert sim.stats.faults_fired["ignore_orderby"] == len(pages)
        sim.faults.clear("ignore_orderby")
        assert _ids(c.get("/Customers", params=q), "CustomerID") == list(range(11, 61))
        sim.faults.set("ignore_orderby", count=1)  # any table, once
        assert _ids(c.get("/Customers", params=q), "CustomerID") != list(range(11, 61))
        assert _ids(c.get("/Customers", params=q), "CustomerID") == list(range(11, 61))
    assert sim.stats.faults_fired["ignore_orderby"] == len(pages) + 1


def test_refused_hidden_dataclass_for_one_run(make_server) -> None:
    """refuse_table hidden=True: 404/1800 for data and $catalog/T, absent from $catalog; clear restores."""
    sim = make_server()
    with rest(sim) as c:
        sim.faults.set("refuse_table", table="Customers", hidden=True)
        for path in ("/Customers", "/Customers(1)", "/Customers/LastName", "/$catalog/Customers"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert r.json()["__ERROR"][0]["errCode"] == 1800
        assert "Customers" not in [d["name"] for d in c.get("/$catalog").json()["dataClasses"]]
        assert "Customers" not in [d["name"] for d in c.get("/$catalog/$all").json()["dataClasses"]]
        assert c.get("/Orders", params={"$top": 1}).status_code == 200
        assert c.get("/$catalog/Orders").status_code == 200
        sim.faults.clear("refuse_table")
        assert c.get("/Customers", params={"$top": 1}).status_code == 200
        assert c.get("/$catalog/Customers").json()["name"] == "Customers"
        assert "Customers" in [d["name"] for d in c.get("/$catalog").json()["dataClasses"]]
    assert sim.stats.faults_fired["refuse_table"] == 4


def test_fault_counters_outlive_exhausted_and_cleared_rules(make_server) -> None:
    """faults_fired counts every firing per kind, after the rule is used up or cleared (Python and HTTP)."""
    sim = make_server()
    with rest(sim) as c:
        sim.faults.set("error_500", count=1)
        assert c.get("/Orders").status_code == 500
        assert sim.faults.active() == []  # used up
        sim.faults.set("page_cap", max=3)
        assert c.get("/Orders", params={"$top": 2}).json()["__SENT"] == 2  # not cut: did not fire
        assert c.get("/Orders", params={"$top": 10}).json()["__SENT"] == 3
        sim.faults.set("refuse_table", table="Invoices")
        assert c.get("/Invoices").status_code == 500
        sim.faults.clear()
        sim.faults.set("expire_sessions")  # fires at once
        sim.faults.set("expire_sessions", after=1)
        assert c.get("/Orders", params={"$top": 1}).status_code == 200
    expected = {"error_500": 1, "page_cap": 1, "refuse_table": 1, "expire_sessions": 2}
    assert sim.stats.as_dict()["faults_fired"] == expected
    assert httpx.get(sim.base_url + "/_sim/stats").json()["faults_fired"] == expected
    httpx.post(sim.base_url + "/_sim/stats/reset")
    assert sim.stats.as_dict()["faults_fired"] == {}
