"""Wire-format behaviours of the 4D simulator. Each test names its protocol-doc checklist item."""

from __future__ import annotations

import json
import re

import httpx
import orjson
import pytest
from sim_helpers import rest

from legacy4d_simulator import Dataset, RawJson, WireValue

PRODUCT_FIELDS = [
    "ProductID",
    "ProductName",
    "Description",
    "SKU",
    "Category",
    "Price",
    "Cost",
    "TaxRate",
    "IsPurchased",
    "IsManufactured",
    "Color",
    "Weight",
    "SellStartDate",
    "SellEndDate",
    "DiscontinuedDate",
    "ModifiedDate",
    "ModifiedTime",
]


def test_item01_rest_prefix_and_case_sensitive_names(aw: httpx.Client) -> None:
    """Checklist 1: everything under /rest; dataclass names case-sensitive, values not."""
    assert aw.get("/Products", params={"$top": 1}).status_code == 200
    r = aw.get("/products")
    assert r.status_code == 404
    assert r.json()["__ERROR"][0]["errCode"] == 1800
    r = aw.get("/Products", params={"$filter": "\"ProductName='adjustable RACE'\""})
    assert r.json()["__COUNT"] == 1
    r = aw.get("/Products", params={"$filter": "\"productname='Adjustable Race'\""})
    assert r.status_code == 500
    assert r.json()["__ERROR"][0]["errCode"] == 1500


def test_item02_catalog_lists_exposed_dataclasses(aw: httpx.Client, make_server) -> None:
    """Checklist 2: $catalog -> __UNIQID + dataClasses[{name, uri, dataURI}], only exposed ones."""
    body = aw.get("/$catalog").json()
    assert re.fullmatch(r"[0-9A-F]{32}", body["__UNIQID"])
    names = [d["name"] for d in body["dataClasses"]]
    assert names[:7] == [
        "Products",
        "Customers",
        "Orders",
        "OrderLines",
        "Invoices",
        "Inventory",
        "BillOfMaterials",
    ]
    assert "__DeletedRecords" in names
    assert body["dataClasses"][0] == {
        "name": "Products",
        "uri": "/rest/$catalog/Products",
        "dataURI": "/rest/Products",
    }
    sim = make_server(hidden_tables=frozenset({"Invoices"}))
    with rest(sim) as c:
        assert "Invoices" not in [d["name"] for d in c.get("/$catalog").json()["dataClasses"]]
        r = c.get("/Invoices")
        assert r.status_code == 404
        assert r.json()["__ERROR"][0]["errCode"] == 1800


def test_item03_catalog_dataclass_attributes(aw: httpx.Client) -> None:
    """Checklist 3: $catalog/{DC} and $all with kind/type/fieldPos, indexed/identifying only when true."""
    dc = aw.get("/$catalog/Orders").json()
    assert dc["name"] == "Orders"
    assert dc["collectionName"] == "OrdersSelection"
    assert dc["dataURI"] == "/rest/Orders"
    assert dc["key"] == [{"name": "OrderID"}]
    assert dc["scope"] == "public"
    attrs = {a["name"]: a for a in dc["attributes"]}
    assert attrs["OrderID"]["identifying"] is True
    assert attrs["OrderID"]["type"] == "long"
    assert "identifying" not in attrs["OrderNumber"]
    assert "indexed" not in attrs["SubTotal"]
    assert attrs["OrderDate"]["simpleDate"] is True
    assert attrs["OrderDate"]["type"] == "date"
    assert attrs["ModifiedTime"]["type"] == "duration"
    assert attrs["Status"]["type"] == "word"
    assert attrs["__GlobalStamp"] == {
        "name": "__GlobalStamp",
        "kind": "storage",
        "fieldPos": 14,
        "scope": "public",
        "type": "long64",
        "indexed": True,
    }
    assert attrs["customer"]["kind"] == "relatedEntity"
    assert attrs["lines"]["kind"] == "relatedEntities"
    assert [a["fieldPos"] for a in dc["attributes"] if a["kind"] == "storage"] == list(range(1, 15))
    all_ = aw.get("/$catalog/$all").json()
    assert [d["name"] for d in all_["dataClasses"]][:2] == ["Products", "Customers"]
    assert all(d["attributes"] for d in all_["dataClasses"])


def test_item04_collection_envelope(aw: httpx.Client) -> None:
    """Checklist 4: __DATACLASS, __entityModel, __GlobalStamp, __COUNT (whole selection), __FIRST, __SENT."""
    r = aw.get("/Customers", params={"$top": 5})
    body = r.json()
    assert list(body) == [
        "__DATACLASS",
        "__entityModel",
        "__GlobalStamp",
        "__COUNT",
        "__FIRST",
        "__SENT",
        "__ENTITIES",
    ]
    assert body["__COUNT"] == 19820
    assert body["__SENT"] == 5
    assert body["__FIRST"] == 0
    assert body["__GlobalStamp"] > 208_000


def test_item05_default_top_limit_skip(aw: httpx.Client) -> None:
    """Checklist 5: default page 100, $top and $limit both accepted, $skip -> __FIRST, __SENT = returned."""
    assert aw.get("/Orders").json()["__SENT"] == 100
    assert aw.get("/Orders", params={"$limit": 7}).json()["__SENT"] == 7
    body = aw.get("/Products", params={"$skip": 500, "$top": 10}).json()
    assert body["__FIRST"] == 500
    assert body["__SENT"] == 4
    assert len(body["__ENTITIES"]) == 4


def test_item06_entity_system_keys_and_single_entity(aw: httpx.Client) -> None:
    """Checklist 6: __KEY string, __TIMESTAMP ISO ms Z, __STAMP int, then attributes; flat single entity."""
    ent = aw.get("/Products", params={"$top": 1, "$orderby": "ProductID"}).json()["__ENTITIES"][0]
    assert list(ent)[:3] == ["__KEY", "__TIMESTAMP", "__STAMP"]
    assert ent["__KEY"] == "1"
    assert isinstance(ent["__STAMP"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ent["__TIMESTAMP"])
    one = aw.get("/Products(1)").json()
    assert list(one)[:5] == ["__DATACLASS", "__entityModel", "__KEY", "__TIMESTAMP", "__STAMP"]
    assert "__COUNT" not in one
    assert one["ProductName"] == "Adjustable Race"


def test_item07_key_access_forms(aw: httpx.Client) -> None:
    """Checklist 7: DC(k), DC[k], quoted keys, DC:attr(value)."""
    assert aw.get("/Orders(43659)").json()["OrderNumber"] == "SO43659"
    assert aw.get("/Orders[43659]").json()["OrderNumber"] == "SO43659"
    assert aw.get('/Orders("43659")').json()["__KEY"] == "43659"
    assert aw.get("/Orders:OrderNumber(SO43660)").json()["OrderID"] == 43660
    r = aw.get("/Orders(1)")
    assert r.status_code == 404
    assert "__ERROR" in r.json()


def test_item08_projection_by_path_and_attributes(aw: httpx.Client) -> None:
    """Checklist 8: /DC/a,b and $attributes keep __KEY/__TIMESTAMP/__STAMP."""
    ent = aw.get("/Products/ProductName,SKU", params={"$top": 1}).json()["__ENTITIES"][0]
    assert list(ent) == ["__KEY", "__TIMESTAMP", "__STAMP", "ProductName", "SKU"]
    ent = aw.get("/Products", params={"$attributes": "ProductID,Price", "$top": 1}).json()["__ENTITIES"][0]
    assert list(ent) == ["__KEY", "__TIMESTAMP", "__STAMP", "ProductID", "Price"]
    assert list(aw.get("/Products(1)/SKU").json())[-1] == "SKU"
    r = aw.get("/Products", params={"$attributes": "Nope"})
    assert r.status_code == 500
    assert [e["errCode"] for e in r.json()["__ERROR"]] == [1500, 1804]


def test_item09_date_encoding(aw: httpx.Client, make_server) -> None:
    """Checklist 9: d!m!yyyy unpadded, blank date "0!0!0", NULL as null, configurable."""
    ent = aw.get("/Products(1)").json()
    assert ent["SellStartDate"] == "30!4!2008"
    assert ent["ModifiedDate"] == "8!2!2014"
    assert ent["SellEndDate"] == "0!0!0"
    ds = Dataset.generate(500, seed=1)
    key = ds.insert("Products", {"ProductName": "n", "SellEndDate": None})
    sim = make_server(ds, null_dates_as_null=True)
    with rest(sim) as c:
        e = c.get(f"/Products({key})").json()
        assert e["SellEndDate"] is None
        assert e["DiscontinuedDate"] is None
    sim2 = make_server(ds)
    with rest(sim2) as c:
        e = c.get(f"/Products({key})").json()
        assert e["SellEndDate"] is None
        assert e["DiscontinuedDate"] == "0!0!0"


def test_item10_time_bool_number_object_encodings(make_server) -> None:
    """Checklist 10 (+ all 4D types): time as ms number, bool, numbers, object, picture, blob, uuid."""
    ds = Dataset.generate(500, seed=1)
    ds.update("Products", 2, {"ModifiedTime": 3_723_004, "Price": 12.5, "IsPurchased": True})
    sim = make_server(ds, showcase_fields=True)
    with rest(sim) as c:
        e = c.get("/Products(2)").json()
        assert e["ModifiedTime"] == 3_723_004
        assert e["Price"] == 12.5
        assert e["IsPurchased"] is True
        assert isinstance(e["ProductID"], int)
        assert isinstance(e["__GlobalStamp"], int)
        assert e["Specs"]["num"] == 2
        assert isinstance(e["Specs"]["tags"], list)
        assert e["Manual"] is None
        assert re.fullmatch(r"[0-9A-F]{32}", e["ProductUUID"])
        assert e["Photo"]["__deferred"]["image"] is True
        assert "$imageformat=best&$version=" in e["Photo"]["__deferred"]["uri"]
        assert c.get("/Products(3)").json()["Photo"] is None
        types = {a["name"]: a["type"] for a in c.get("/$catalog/Products").json()["attributes"]}
        assert (types["Photo"], types["Specs"], types["Manual"], types["ProductUUID"]) == (
            "image",
            "object",
            "blob",
            "uuid",
        )
        png = c.get("/Products(2)/Photo", params={"$imageformat": "best", "$expand": "Photo"})
        assert png.headers["content-type"] == "image/png"


def test_item11_relation_stubs(aw: httpx.Client) -> None:
    """Checklist 11: N->1 {uri, __KEY}, 1->N {uri ...?$expand=rel}; FK fields stay plain numbers."""
    o = aw.get("/Orders(43659)").json()
    assert o["CustomerID"] == 29825
    assert o["customer"] == {"__deferred": {"uri": "/rest/Customers(29825)", "__KEY": "29825"}}
    assert o["lines"] == {"__deferred": {"uri": "/rest/Orders(43659)/lines?$expand=lines"}}
    lines = aw.get("/Orders(43659)/lines", params={"$expand": "lines"}).json()
    assert lines["__entityModel"] == "OrderLines"
    assert lines["__COUNT"] == 12
    emb = aw.get("/Orders(43659)", params={"$attributes": "customer.AccountNumber"}).json()
    assert emb["customer"]["AccountNumber"] == "AW00029825"
    assert emb["customer"]["__KEY"] == "29825"


def test_item24_error_shape_and_codes(aw: httpx.Client) -> None:
    """Checklist 24: __ERROR [{message, componentSignature: dbmg, errCode}] with realistic codes/statuses."""
    r = aw.get("/currentUser")
    assert r.status_code == 404
    err = r.json()["__ERROR"][0]
    assert set(err) == {"message", "componentSignature", "errCode"}
    assert err["componentSignature"] == "dbmg"
    r = aw.get("/Products/$entityset/0123456789ABCDEF0123456789ABCDEF")
    assert r.status_code == 404
    assert r.json()["__ERROR"][0]["errCode"] == 1802
    r = aw.get("/Products", params={"$filter": "ProductID >> 3"})
    assert r.status_code == 500
    assert 1201 in [e["errCode"] for e in r.json()["__ERROR"]]
    r = aw.get("/Products", params={"$method": "delete"})
    assert r.status_code == 500
    assert r.json()["__ERROR"][0]["errCode"] == 1828
    r = aw.get("/Products", params={"$bogus": "1"})
    assert r.json()["__ERROR"][0]["errCode"] == 1811
    r = aw.get("/Products", params={"$orderby": "Price sideways"})
    assert r.json()["__ERROR"][0]["errCode"] == 1810


def test_item25_hidden_and_privileged_fields(make_server) -> None:
    """Checklist 25: non-exposed fields absent and rejected; privilege-hidden ones silently omitted."""
    sim = make_server(
        hidden_fields=frozenset({"Customers.Email"}), privileged_fields=frozenset({"Customers.Phone"})
    )
    with rest(sim) as c:
        names = [a["name"] for a in c.get("/$catalog/Customers").json()["attributes"]]
        assert "Email" not in names
        e = c.get("/Customers(1)").json()
        assert "Email" not in e
        assert "Phone" not in e
        assert "LastName" in e
        assert c.get("/Customers", params={"$attributes": "Email"}).status_code == 500
        e = c.get("/Customers", params={"$attributes": "CustomerID,Phone", "$top": 1}).json()["__ENTITIES"][0]
        assert "Phone" not in e
        assert e["CustomerID"]


def test_item28_legacy_quirks(make_server) -> None:
    """Checklist 28: quoted __TIMESTAMP, __SENT last, no __DATACLASS/__GlobalStamp; \\r in text."""
    ds = Dataset.generate(500, seed=1)
    ds.update("Customers", 1, {"LastName": "line1\rline2"})
    sim = make_server(ds, legacy_quirks=True)
    with rest(sim) as c:
        body = c.get("/Customers", params={"$top": 2, "$orderby": "CustomerID"}).json()
        assert list(body) == ["__entityModel", "__COUNT", "__FIRST", "__ENTITIES", "__SENT"]
        ts = body["__ENTITIES"][0]["__TIMESTAMP"]
        assert ts.startswith('"')
        assert ts.endswith('Z"')
        assert body["__ENTITIES"][0]["LastName"] == "line1\rline2"
        assert "__DATACLASS" not in c.get("/Customers(1)").json()


def test_raw_json_and_wire_values_in_fields_and_system_keys(make_server) -> None:
    """RawJson: lone surrogate, >64-bit integer, NUL in __KEY/__TIMESTAMP sent verbatim; page stays JSON."""
    ds = Dataset.generate(2000, seed=7)
    n = ds.count("Customers")
    ds.update(
        "Customers",
        5,
        {
            "LastName": RawJson('"Bad \\ud800 text"'),
            "Phone": RawJson("123456789012345678901234567890"),
            "ModifiedTime": WireValue(90_000_000),
        },
    )
    ds.update(
        "Customers",
        6,
        {
            "__KEY": RawJson('"6\\u0000"'),
            "__TIMESTAMP": RawJson('"2020-01-01T00:00:00.000Z\\u0000"'),
            "ModifiedTime": WireValue("noon"),
        },
    )
    ds.update("Customers", 7, {"ModifiedTime": WireValue(-1)})
    with pytest.raises(ValueError, match="one JSON value"):
        RawJson('{"unterminated": ')
    with pytest.raises(ValueError, match="WireValue or RawJson"):
        ds.update("Customers", 8, {"__KEY": "8"})
    sim = make_server(ds)
    with rest(sim) as c:
        params = {"$filter": '"CustomerID>=:1 AND CustomerID<=:2"', "$params": "'[4,8]'"}
        r = c.get("/Customers", params={**params, "$orderby": "CustomerID", "$top": 3, "$skip": 1})
        assert r.status_code == 200
        assert '"LastName":"Bad \\ud800 text"' in r.text
        assert '"Phone":123456789012345678901234567890' in r.text
        assert '"__KEY":"6\\u0000","__TIMESTAMP":"2020-01-01T00:00:00.000Z\\u0000"' in r.text
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(r.content)  # a strict decoder refuses the lone surrogate
        body = json.loads(r.text)  # but the page is JSON text
        assert (body["__COUNT"], body["__FIRST"], body["__SENT"]) == (5, 1, 3)
        ents = body["__ENTITIES"]
        assert [e["__KEY"] for e in ents] == ["5", "6\x00", "7"]
        assert ents[0]["Phone"] == 123456789012345678901234567890
        assert [e["ModifiedTime"] for e in ents] == [90_000_000, "noon", -1]
        assert '"__KEY":"6\\u0000"' in c.get("/Customers(6)").text
        # The query engine reads wire-only values as NULL instead of failing.
        r = c.get(
            "/Customers", params={"$filter": '"ModifiedTime>=0"', "$orderby": "ModifiedTime", "$top": 1}
        )
        assert r.json()["__COUNT"] == n - 3
        assert c.get("/Customers/ModifiedTime", params={"$compute": "count"}).json() == n - 3
        ds.update("Customers", 6, {"__KEY": None, "__TIMESTAMP": None})
        assert c.get("/Customers(6)").json()["__KEY"] == "6"
