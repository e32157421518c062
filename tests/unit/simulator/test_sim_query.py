"""$filter, $params, $orderby, unsorted order, $distinct/$compute/$asArray (checklist 12-14, 18)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx
import pytest
from sim_helpers import rest

from legacy4d_simulator import Dataset


def count(c: httpx.Client, table: str, flt: str, params: str | None = None) -> int:
    q = {"$filter": flt, "$top": 0}
    if params is not None:
        q["$params"] = params
    r = c.get(f"/{table}", params=q)
    assert r.status_code == 200, r.text
    return r.json()["__COUNT"]


def test_item12_filter_grammar(aw: httpx.Client) -> None:
    """Checklist 12: comparators, AND/OR/EXCEPT, parentheses, @, begin, quotes, dates, null, dot paths."""
    assert count(aw, "Products", '"ProductID=3"') == 1
    assert count(aw, "Products", '"ProductID!=3"') == 503
    assert count(aw, "Products", '"ProductID>=316 AND ProductID<=325"') == 10
    assert count(aw, "Products", '"ProductID<3 OR ProductID>998"') == 3
    assert count(aw, "Products", '"ProductID<=320 EXCEPT ProductID=4"') == 8
    assert count(aw, "Products", '"(ProductID=1 OR ProductID=2) AND Color=null"') == 2
    assert count(aw, "Products", '"Color!=null"') == 256
    assert (
        count(aw, "Products", "\"ProductName='hl road frame@'\"")
        == count(aw, "Products", "\"ProductName begin 'hl road frame'\"")
        > 0
    )
    assert count(aw, "Products", "\"ProductName='@frame@'\"") > count(
        aw, "Products", "\"ProductName='frame@'\""
    )
    assert count(aw, "Products", "ProductName begin Adjust") == 1
    assert count(aw, "Products", "\"ProductName='Adjustable Race'\"") == 1
    assert count(aw, "Products", '"ProductName=\\"Adjustable Race\\""'.replace("\\", "")) == 1
    assert (
        count(aw, "Orders", "\"OrderDate>='2014-06-01'\"")
        == count(aw, "Orders", "\"OrderDate>='2014-06-01' AND OrderDate<='2014-12-31'\"")
        > 0
    )
    assert count(aw, "Orders", "\"OrderDate='2011-05-31'\"") == 43
    assert count(aw, "Products", '"SellEndDate=null"') == 0  # blank dates are not NULL
    assert count(aw, "OrderLines", "\"product.ProductName='Road-150 Red, 62'\"") > 0
    assert count(aw, "Products", '"ProductID IN [1,2,3,999,5]"') == 4
    r = aw.get("/Products", params={"$filter": "\"ProductName='unterminated"})
    assert r.status_code == 500
    assert r.json()["__ERROR"][0]["errCode"] in (1808, 1809)


def test_item13_params_placeholders(aw: httpx.Client) -> None:
    """Checklist 13: $params '[...]' placeholders :n, JSON values, \\u0027; missing/null -> 1279 (+1201)."""
    assert count(aw, "Products", '"ProductID>:1 AND ProductID<=:2"', "'[315,325]'") == 10
    assert count(aw, "Customers", '"LastName=:1"', "'[\"O\\u0027Brien\"]'") >= 0
    assert count(aw, "Products", '"ProductName=:1"', "'[\"Adjustable Race\"]'") == 1
    assert count(aw, "Products", '"ProductID in :1"', "'[[1,2,3]]'") == 3
    for params in ("'[]'", "'[null]'"):
        r = aw.get("/Products", params={"$filter": '"ProductID>:1"', "$params": params})
        assert r.status_code == 500
        assert [e["errCode"] for e in r.json()["__ERROR"]] == [1279, 1201]


def test_item13_strict_date_placeholders(make_server) -> None:
    """Checklist 13 (date variant): strict_dates reproduces the 1279 failure of date placeholders."""
    sim = make_server(strict_dates=True)
    with rest(sim) as c:
        r = c.get("/Orders", params={"$filter": '"OrderDate>:1"', "$params": "'[\"2012-01-01\"]'"})
        assert r.json()["__ERROR"][0]["errCode"] == 1279
        assert c.get("/Orders", params={"$filter": "\"OrderDate>'2012-01-01'\""}).status_code == 200


def test_item14_orderby_and_unsorted_order(aw: httpx.Client) -> None:
    """Checklist 14: multi-key $orderby asc/desc; no PK order guaranteed without $orderby."""
    ents = aw.get(
        "/Products",
        params={"$orderby": "Color desc, ProductID asc", "$top": 504, "$attributes": "ProductID,Color"},
    ).json()["__ENTITIES"]
    colors = [e["Color"] for e in ents]
    assert colors[0] == "Yellow"
    assert colors[-1] is None
    yellow = [e["ProductID"] for e in ents if e["Color"] == "Yellow"]
    assert yellow == sorted(yellow)
    ids = [
        e["ProductID"]
        for e in aw.get("/Products", params={"$orderby": "ProductID desc"}).json()["__ENTITIES"]
    ]
    assert ids == sorted(ids, reverse=True)
    unsorted = [int(e["__KEY"]) for e in aw.get("/Products", params={"$top": 504}).json()["__ENTITIES"]]
    assert unsorted != sorted(unsorted)
    assert sorted(unsorted) == sorted(set(unsorted))


def test_item18_distinct_compute_asarray(aw: httpx.Client) -> None:
    """Checklist 18: $distinct bare array, $compute object for $all / bare scalar, $asArray."""
    colors = aw.get("/Products/Color", params={"$distinct": "true"}).json()
    assert isinstance(colors, list)
    assert "Black" in colors
    assert colors == sorted(colors)
    all_ = aw.get("/Orders/Freight", params={"$compute": "$all"}).json()
    assert set(all_["Freight"]) == {"count", "sum", "average", "min", "max"}
    assert aw.get("/Orders/Freight", params={"$compute": "count"}).json() == 31465
    total = aw.get("/Products/Price", params={"$compute": "sum", "$filter": "ProductID<=3"}).json()
    assert total == 0
    r = aw.get("/Orders/Freight", params={"$compute": "median"})
    assert r.json()["__ERROR"][0]["errCode"] == 1817
    arr = aw.get(
        "/Orders",
        params={"$asArray": "true", "$top": 2, "$orderby": "OrderID", "$attributes": "OrderID,lines"},
    ).json()
    assert isinstance(arr, list)
    assert arr[0]["__KEY"] == {"OrderID": 43659, "__STAMP": 1}
    assert arr[0]["lines"] == {"__COUNT": 12}


def test_key_range_and_residual_predicate_stay_within_the_range(make_server) -> None:
    """A PK bound ANDed with another condition keeps the bound (the range view stops at its end)."""
    sim = make_server()
    with rest(sim) as c:
        ids = [
            e["ProductID"]
            for e in c.get(
                "/Products",
                params={"$filter": '"ProductID<=5 AND ProductName!=null"', "$attributes": "ProductID"},
            ).json()["__ENTITIES"]
        ]
        assert sorted(ids) == [1, 2, 3, 4, 5]
        assert count(c, "Products", '"ProductID>3 AND ProductID<=6 AND SKU!=null"') == 3


def _keys(c: httpx.Client, table: str, **q: object) -> list[int]:
    r = c.get(f"/{table}", params={"$top": 100_000, **q})
    assert r.status_code == 200, r.text
    return [int(e["__KEY"]) for e in r.json()["__ENTITIES"]]


def test_repeated_primary_key_twins_behave_like_a_4d_selection(make_server) -> None:
    """add_twin: a second record with the same key; =, >=, IN, __COUNT include both, > neither."""
    ds = Dataset.generate(2000, seed=7)
    n = ds.count("Orders")
    status = ds.get("Orders", 20)["Status"]
    ds.add_twin("Orders", 20, {"Status": status + 1})
    with pytest.raises(KeyError):
        ds.add_twin("Orders", 10**6)
    assert ds.count("Orders") == n + 1
    assert list(ds.keys("Orders")).count(20) == 2
    sim = make_server(ds)
    with rest(sim) as c:
        assert c.get("/Orders", params={"$top": 0}).json()["__COUNT"] == n + 1
        twins = c.get("/Orders", params={"$filter": '"OrderID=:1"', "$params": "'[20]'"}).json()
        assert twins["__COUNT"] == 2
        a, b = twins["__ENTITIES"]
        assert a["__KEY"] == b["__KEY"] == "20"
        assert a["OrderID"] == b["OrderID"] == 20
        assert {a["Status"], b["Status"]} == {status, status + 1}
        assert a["__GlobalStamp"] != b["__GlobalStamp"]
        assert count(c, "Orders", '"OrderID>:1"', "'[20]'") == n - 20
        assert count(c, "Orders", '"OrderID>=:1"', "'[20]'") == n - 18
        assert count(c, "Orders", '"OrderID in :1"', "'[[19,20,21]]'") == 4
        assert count(c, "Orders", '"OrderID=20 OR OrderID=21"') == 3  # key read by a predicate
        assert count(c, "Orders", f'"OrderID=20 AND Status={status + 1}"') == 1
        ascending = _keys(c, "Orders", **{"$orderby": "OrderID"})
        assert ascending == sorted([*range(1, n + 1), 20])  # adjacent
        assert _keys(c, "Orders", **{"$orderby": "OrderID desc"}) == ascending[::-1]
        by_status = _keys(c, "Orders", **{"$orderby": "Status, OrderID"})
        assert sorted(by_status) == ascending
        unsorted = [
            k for skip in range(0, n + 1, 50) for k in _keys(c, "Orders", **{"$skip": skip, "$top": 50})
        ]
        assert unsorted != ascending
        assert sorted(unsorted) == ascending
        twin_stamp = max(a["__GlobalStamp"], b["__GlobalStamp"])
        window = _keys(c, "Orders", **{"$filter": f'"__GlobalStamp>={twin_stamp}"'})
        assert window == [20]
        es = c.get(
            "/Orders", params={"$filter": '"OrderID>=19 AND OrderID<=21"', "$method": "entityset", "$top": 1}
        ).json()["__ENTITYSET"][len("/rest") :]
        ds.update("Orders", 20, {"Freight": 1.5})  # the first record only
        freights = [e["Freight"] for e in c.get(es, params={"$orderby": "OrderID"}).json()["__ENTITIES"][1:3]]
        assert sorted(freights, key=str)[0] == 1.5
        assert freights.count(1.5) == 1
        ds.delete("Orders", 20)  # both
        assert ds.count("Orders") == n - 1
        assert count(c, "Orders", '"OrderID=20"') == 0
        members = c.get(es).json()
        assert members["__COUNT"] == 4
        assert [e for e in members["__ENTITIES"] if e == {"__STAMP": 0}] == [{"__STAMP": 0}] * 2
        dels = c.get("/__DeletedRecords", params={"$filter": '"__PrimaryKey=20"'}).json()["__ENTITIES"]
        assert len(dels) == 2
        assert dels[0]["__Stamp"] != dels[1]["__Stamp"]
    r = httpx.post(
        sim.base_url + "/_sim/mutate", json={"op": "add_twin", "table": "Orders", "key": 21, "changes": {}}
    )
    assert r.status_code == 200
    assert ds.count("Orders") == n


class _CountingKeys:
    """A key array that counts element reads: a table scan would read every key."""

    def __init__(self, keys: Sequence[int]) -> None:
        self.keys = keys
        self.reads = 0

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> int:
        self.reads += 1
        return self.keys[i]


def test_reading_records_by_key_list_costs_keys_log_n(make_server) -> None:
    """'OrderLineID in :1' with $params='[[...]]': ~500 keys, missing keys, twins, $attributes; no scan."""
    ds = Dataset.generate(1_700_000, seed=4)
    table = ds.table("OrderLines")
    n = len(table)
    assert n >= 1_000_000
    ds.add_twin("OrderLines", 3998, {"Quantity": 99})
    live = [k * 1999 for k in range(1, 501)]
    wanted = [*live, n + 5, 10**9]  # 500 live keys (one with a twin) and 2 missing ones
    sim = make_server(ds)
    keys = _CountingKeys(table.keys)
    table.keys = keys  # type: ignore[assignment]
    try:
        with rest(sim) as c:
            r = c.get(
                "/OrderLines",
                params={
                    "$filter": '"OrderLineID in :1"',
                    "$params": "'" + json.dumps([wanted]) + "'",
                    "$attributes": "OrderLineID,Quantity",
                    "$top": 1000,
                },
            )
    finally:
        table.keys = keys.keys  # type: ignore[assignment]
    assert r.status_code == 200, r.text
    assert keys.reads < 50 * len(wanted)  # one bisect (~21 reads) per key, not a scan of n
    body = r.json()
    assert body["__COUNT"] == body["__SENT"] == 501
    assert sorted(e["OrderLineID"] for e in body["__ENTITIES"]) == sorted([*live, 3998])
    assert [e["Quantity"] for e in body["__ENTITIES"] if e["OrderLineID"] == 3998].count(99) == 1
    assert set(body["__ENTITIES"][0]) == {"__KEY", "__TIMESTAMP", "__STAMP", "OrderLineID", "Quantity"}
