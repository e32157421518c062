"""Data change tracking and the mutation API (checklist 26-27)."""

from __future__ import annotations

import datetime as dt
import email.utils

import httpx
from sim_helpers import rest

from legacy4d_simulator import Dataset


def test_item26_global_stamp_deleted_records_and_windows(make_server, small_dataset: Dataset) -> None:
    """Checklist 26: __GlobalStamp on save, envelope counter, __DeletedRecords, stamp-range filters."""
    sim = make_server(small_dataset)
    with rest(sim) as c:
        start = c.get("/Products", params={"$top": 0}).json()["__GlobalStamp"]
        key = small_dataset.insert("Products", {"ProductName": "New bike", "SKU": "NB-1"})
        small_dataset.update("Products", 5, {"Price": 99.5})
        small_dataset.delete("Products", 6)
        body = c.get(
            "/Products",
            params={"$filter": '"__GlobalStamp>=:1"', "$params": f"'[{start}]'", "$orderby": "__GlobalStamp"},
        ).json()
        assert [e["ProductID"] for e in body["__ENTITIES"]] == [key, 5]
        assert [e["__GlobalStamp"] for e in body["__ENTITIES"]] == [start, start + 1]
        end = body["__GlobalStamp"]
        assert end == start + 3
        dels = c.get(
            "/__DeletedRecords", params={"$filter": f'"__Stamp >= {start} AND __Stamp <= {end}"'}
        ).json()
        ent = dels["__ENTITIES"][0]
        assert ent["__PrimaryKey"] == "6"
        assert ent["__TableName"] == "Products"
        assert ent["__TableNumber"] == 1
        assert ent["__Stamp"] == start + 2
        assert list(ent)[:3] == ["__KEY", "__TIMESTAMP", "__STAMP"]
        by_name = c.get("/__DeletedRecords", params={"$filter": "__TableName=Products"}).json()
        assert by_name["__COUNT"] == 1


def test_item26_untracked_table_switch(make_server, small_dataset: Dataset) -> None:
    """Checklist 26 (switch): untracked table: no __GlobalStamp attribute/filter, envelope 0, no deletions."""
    sim = make_server(small_dataset, untracked_tables=frozenset({"Customers"}))
    with rest(sim) as c:
        body = c.get("/Customers", params={"$top": 1}).json()
        assert body["__GlobalStamp"] == 0
        assert "__GlobalStamp" not in body["__ENTITIES"][0]
        names = [a["name"] for a in c.get("/$catalog/Customers").json()["attributes"]]
        assert "__GlobalStamp" not in names
        r = c.get("/Customers", params={"$filter": "__GlobalStamp>0"})
        assert r.status_code == 500
        assert r.json()["__ERROR"][0]["errCode"] == 1500
        small_dataset.delete("Customers", 1)
        small_dataset.delete("Products", 1)
        tables = [e["__TableName"] for e in c.get("/__DeletedRecords").json()["__ENTITIES"]]
        assert tables == ["Products"]


def test_item27_stamp_increments_per_save(make_server, small_dataset: Dataset) -> None:
    """Checklist 27: __STAMP +1 per save, __TIMESTAMP and ModifiedDate/Time refreshed."""
    sim = make_server(small_dataset)
    with rest(sim) as c:
        before = c.get("/Orders(9)").json()
        small_dataset.update("Orders", 9, {"Status": 6})
        small_dataset.update("Orders", 9, {"Freight": 1.25})
        after = c.get("/Orders(9)").json()
        assert before["__STAMP"] == 1
        assert after["__STAMP"] == 3
        assert after["Status"] == 6
        assert after["Freight"] == 1.25
        assert after["__TIMESTAMP"] != before["__TIMESTAMP"]
        assert after["__GlobalStamp"] > before["__GlobalStamp"]
        assert small_dataset.stamps("Orders", 9)["__STAMP"] == 3


def test_mutation_api_python_and_http(make_server, small_dataset: Dataset) -> None:
    """Mutation API: insert/update/delete/count/get/keys in Python and via POST /_sim/mutate."""
    n = small_dataset.count("Customers")
    sim = make_server(small_dataset)
    r = httpx.post(
        sim.base_url + "/_sim/mutate",
        json=[
            {
                "op": "insert",
                "table": "Customers",
                "record": {"LastName": "Zed", "ModifiedDate": "2024-02-29"},
            },
            {"op": "update", "table": "Customers", "key": 2, "changes": {"FirstName": "Ann"}},
            {"op": "delete", "table": "Customers", "key": 3},
        ],
    )
    assert r.status_code == 200, r.text
    new_key = r.json()["results"][0]["key"]
    assert small_dataset.count("Customers") == n
    assert small_dataset.get("Customers", new_key)["LastName"] == "Zed"
    assert str(small_dataset.get("Customers", new_key)["ModifiedDate"]) == "2024-02-29"
    assert small_dataset.get("Customers", 2)["FirstName"] == "Ann"
    assert small_dataset.get("Customers", 3) is None
    keys = list(small_dataset.keys("Customers"))
    assert 3 not in keys
    assert keys == sorted(keys)
    assert keys[-1] == new_key
    with rest(sim) as c:
        assert c.get(f"/Customers({new_key})").json()["ModifiedDate"] == "29!2!2024"
    bad = httpx.post(sim.base_url + "/_sim/mutate", json={"op": "update", "table": "Customers", "key": 3})
    assert bad.status_code == 400
    stats = httpx.get(sim.base_url + "/_sim/stats").json()
    assert stats["counts"]["Customers"] == n
    assert stats["requests"] >= 1


def test_control_token(make_server) -> None:
    """The /_sim endpoints can be protected by a token."""
    sim = make_server(control_token="t0k")
    assert httpx.get(sim.base_url + "/_sim/stats").status_code == 403
    assert httpx.get(sim.base_url + "/_sim/stats", headers={"X-Sim-Token": "t0k"}).status_code == 200


def _http_date(r: httpx.Response) -> dt.datetime:
    values = r.headers.get_list("date")
    assert len(values) == 1, values  # uvicorn's own Date header is off
    return email.utils.parsedate_to_datetime(values[0])


def test_server_clock_drives_date_header_and_saves(make_server, small_dataset: Dataset) -> None:
    """The server's clock: Date header on every response, ModifiedDate/Time and __TIMESTAMP of saves."""
    sim = make_server(small_dataset, clock_offset_days=-400)
    expected = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    with rest(sim) as c:
        assert abs((_http_date(c.get("/Products", params={"$top": 1})) - expected).total_seconds()) < 10
        assert abs((_http_date(c.get("/Nope")) - expected).total_seconds()) < 10
        assert abs((_http_date(httpx.get(sim.base_url + "/_sim/stats")) - expected).total_seconds()) < 10
        small_dataset.update("Products", 3, {"Price": 1.0})
        e = c.get("/Products(3)").json()
        day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=400)).date()
        assert e["ModifiedDate"] == f"{day.day}!{day.month}!{day.year}"
        assert e["__TIMESTAMP"].startswith(day.isoformat())
        sim.set_clock(dt.datetime(2030, 12, 31, 23, 59, 0))
        r = c.get("/Products", params={"$top": 1})
        assert r.headers["date"].startswith("Tue, 31 Dec 2030 23:59:")
        assert r.headers["date"].endswith(" GMT")
        key = small_dataset.insert("Products", {"ProductName": "late"})
        e = c.get(f"/Products({key})").json()
        assert e["ModifiedDate"] == "31!12!2030"
        assert 86_340_000 <= e["ModifiedTime"] < 86_400_000
        assert e["__TIMESTAMP"].startswith("2030-12-31T23:59:")
        # An explicit ModifiedDate is kept, even in the server's future.
        small_dataset.update("Products", 4, {"ModifiedDate": dt.date(2031, 1, 1)})
        assert c.get("/Products(4)").json()["ModifiedDate"] == "1!1!2031"
        later = c.get(
            "/Products", params={"$filter": "\"ModifiedDate>'2030-12-31'\"", "$attributes": "ProductID"}
        )
        assert [x["ProductID"] for x in later.json()["__ENTITIES"]] == [4]
    clock = httpx.post(sim.base_url + "/_sim/clock", json={"offset_days": 1}).json()
    assert clock["offset_days"] == 1
    assert (
        dt.datetime.fromisoformat(clock["now"]).date()
        == (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()
    )
    httpx.post(sim.base_url + "/_sim/clock", json={})
    assert (
        abs(
            (_http_date(httpx.get(sim.base_url + "/rest/$catalog")) - dt.datetime.now(dt.UTC)).total_seconds()
        )
        < 10
    )
