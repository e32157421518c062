"""Entity sets (checklist 15-17)."""

from __future__ import annotations

import re
import time

import httpx
from sim_helpers import rest


def test_item15_entityset_creation_and_paging(aw: httpx.Client) -> None:
    """Checklist 15: __ENTITYSET first key (32 hex), whole selection saved, pages via $entityset/{id}."""
    body = aw.get(
        "/Orders",
        params={"$filter": '"OrderID<43759"', "$orderby": "OrderID", "$method": "entityset", "$top": 1},
    ).json()
    assert next(iter(body)) == "__ENTITYSET"
    m = re.fullmatch(r"/rest/Orders/\$entityset/([0-9A-F]{32})", body["__ENTITYSET"])
    assert m
    assert body["__COUNT"] == 100
    assert body["__SENT"] == 1
    page = aw.get(f"/Orders/$entityset/{m[1]}", params={"$skip": 90, "$top": 50}).json()
    assert page["__COUNT"] == 100
    assert page["__SENT"] == 10
    assert page["__ENTITIES"][0]["OrderID"] == 43749
    proj = aw.get(f"/Orders/OrderID/$entityset/{m[1]}", params={"$top": 1}).json()["__ENTITIES"][0]
    assert list(proj) == ["__KEY", "__TIMESTAMP", "__STAMP", "OrderID"]
    sub = aw.get(
        f"/Orders/$entityset/{m[1]}", params={"$filter": "OrderID<43669", "$orderby": "OrderID desc"}
    )
    assert [e["OrderID"] for e in sub.json()["__ENTITIES"]][:2] == [43668, 43667]


def test_item16_entityset_timeout_saved_and_release(aw: httpx.Client) -> None:
    """Checklist 16: expiry -> 1802/404, $savedfilter recreates, $method=release -> {"ok": true}."""
    first = aw.get(
        "/Products",
        params={
            "$filter": "ProductID<=5",
            "$method": "entityset",
            "$timeout": 1,
            "$savedfilter": "ProductID<=5",
        },
    ).json()
    uri = first["__ENTITYSET"]
    set_id = uri.rsplit("/", 1)[1]
    assert aw.get(f"/Products/$entityset/{set_id}").status_code == 200
    time.sleep(1.3)
    r = aw.get(f"/Products/$entityset/{set_id}")
    assert r.status_code == 404
    assert r.json()["__ERROR"][0]["errCode"] == 1802
    again = aw.get(f"/Products/$entityset/{set_id}", params={"$savedfilter": "ProductID<=5"}).json()
    assert again["__COUNT"] == first["__COUNT"] == 4
    assert aw.get(f"/Products/$entityset/{set_id}", params={"$method": "release"}).json() == {"ok": True}
    r = aw.get(f"/Products/$entityset/{set_id}", params={"$method": "release"})
    assert r.json()["__ERROR"][0]["errCode"] == 1802


def test_item17_frozen_membership_deleted_placeholders_and_clean(make_server, small_dataset) -> None:
    """Checklist 17: membership frozen, deleted -> {"__STAMP": 0} and kept in __COUNT; $clean removes."""
    sim = make_server(small_dataset)
    with rest(sim) as c:
        body = c.get(
            "/Customers",
            params={"$filter": "CustomerID<=10", "$orderby": "CustomerID", "$method": "entityset"},
        ).json()
        set_id = body["__ENTITYSET"].rsplit("/", 1)[1]
        small_dataset.delete("Customers", 3)
        small_dataset.insert("Customers", {"CustomerID": 0, "LastName": "new"})
        small_dataset.update("Customers", 4, {"LastName": "Changed"})
        page = c.get(f"/Customers/$entityset/{set_id}").json()
        assert page["__COUNT"] == 10
        assert page["__ENTITIES"][2] == {"__STAMP": 0}
        assert page["__ENTITIES"][3]["LastName"] == "Changed"  # values are live
        cleaned = c.get(f"/Customers/$entityset/{set_id}", params={"$clean": "true", "$method": "entityset"})
        assert cleaned.json()["__COUNT"] == 9
        assert cleaned.json()["__ENTITYSET"] != body["__ENTITYSET"]
