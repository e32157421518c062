"""$filter, $params, $orderby, unsorted order, $distinct/$compute/$asArray (checklist 12-14, 18)."""

from __future__ import annotations

import httpx
from sim_helpers import rest


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
