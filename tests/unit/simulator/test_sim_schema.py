"""Structure changes between runs (schema drift), seen by REST sessions opened afterwards."""

from __future__ import annotations

import httpx
from sim_helpers import rest

from legacy4d_simulator import Dataset


def _attrs(c: httpx.Client, table: str) -> dict[str, dict]:
    r = c.get(f"/$catalog/{table}")
    assert r.status_code == 200, r.text
    return {a["name"]: a for a in r.json()["attributes"]}


def _err(r: httpx.Response) -> tuple[int, int]:
    return r.status_code, r.json()["__ERROR"][0]["errCode"]


def test_structure_changes_need_a_new_session(make_server, small_dataset: Dataset) -> None:
    """Add, retype, remove, privilege-hide fields and un-expose a table; old sessions keep their model."""
    sim = make_server(small_dataset)
    with rest(sim) as old:
        before = old.get("/Customers(1)").json()
        sim.schema.add_field("Customers", "Region", "string", "EU")
        sim.schema.add_field("Orders", "Priority", "long", generate=lambda key: key % 3)
        sim.schema.retype_field("Customers", "Phone", "string", length=3)
        sim.schema.retype_field("Orders", "Status", "string")
        sim.schema.remove_field("Customers", "Email")
        sim.schema.hide_field("Customers", "FirstName")
        sim.schema.unexpose_table("Invoices")
        assert sim.schema.current.version == 7
        # The session opened before the changes still sees the structure it loaded.
        assert old.get("/Customers(1)").json() == before
        assert "Region" not in _attrs(old, "Customers")
        assert _attrs(old, "Orders")["Status"]["type"] == "word"
        assert old.get("/Orders(1)").json()["Status"] == small_dataset.get("Orders", 1)["Status"]
        assert _err(old.get("/Customers", params={"$attributes": "Region"})) == (500, 1500)
        assert old.get("/Invoices", params={"$top": 1}).status_code == 200
    with rest(sim) as new:
        attrs = _attrs(new, "Customers")
        assert "Email" not in attrs  # removed
        assert "FirstName" in attrs  # privilege-hidden: still described
        assert attrs["Region"]["type"] == "string"
        assert attrs["Region"]["fieldPos"] == attrs["__GlobalStamp"]["fieldPos"] + 1  # numbered last
        assert attrs["LastName"]["fieldPos"] == 5  # existing numbers do not move
        assert _attrs(new, "Orders")["Status"]["type"] == "string"
        assert _attrs(new, "Orders")["Priority"]["type"] == "long"
        e = new.get("/Customers(1)").json()
        names = list(e)
        assert names.index("Region") == names.index("__GlobalStamp") + 1
        assert e["Region"] == "EU"
        assert "Email" not in e
        assert "FirstName" not in e
        assert e["Phone"] == small_dataset.get("Customers", 1)["Phone"][:3]
        status = small_dataset.get("Orders", 4)["Status"]
        o = new.get("/Orders(4)").json()
        assert o["Status"] == str(status)
        assert o["Priority"] == 1
        for q in ({"$filter": "Email=null"}, {"$attributes": "Email"}, {"$orderby": "Email"}):
            assert _err(new.get("/Customers", params=q))[1] == 1500
        ones = len([k for k in small_dataset.keys("Orders") if k % 3 == 1])
        assert new.get("/Orders", params={"$filter": "Priority=1", "$top": 0}).json()["__COUNT"] == ones
        same = new.get("/Orders", params={"$filter": f"\"Status='{status}'\"", "$top": 0})
        assert same.json()["__COUNT"] > 0
        assert _err(new.get("/Invoices")) == (404, 1800)
        assert _err(new.get("/$catalog/Invoices")) == (404, 1800)
        assert "Invoices" not in [d["name"] for d in new.get("/$catalog").json()["dataClasses"]]
        key = small_dataset.insert("Customers", {"LastName": "New", "Region": "US"})
        assert new.get(f"/Customers({key})").json()["Region"] == "US"
    sim.schema.expose_table("Invoices")
    sim.schema.show_field("Customers", "FirstName")
    with rest(sim) as newer:
        assert newer.get("/Invoices", params={"$top": 1}).status_code == 200
        assert "FirstName" in newer.get("/Customers(1)").json()


def test_structure_changes_over_http_and_at_once_when_configured(make_server) -> None:
    """POST/GET /_sim/schema; schema_changes_need_new_session=False shows changes to live sessions."""
    sim = make_server(schema_changes_need_new_session=False)
    base = sim.base_url
    with rest(sim) as c:
        assert "Color" in c.get("/Products(1)").json()
        r = httpx.post(
            base + "/_sim/schema",
            json=[
                {"op": "remove_field", "table": "Products", "name": "Color"},
                {
                    "op": "add_field",
                    "table": "Products",
                    "name": "Origin",
                    "type": "string",
                    "generate": "O-{key}",
                },
                {"op": "retype_field", "table": "Products", "name": "ProductID", "type": "long64"},
            ],
        )
        assert r.status_code == 400  # the primary key cannot be retyped; the first two are done
        assert r.json()["version"] == 2
        e = c.get("/Products(2)").json()  # same session, changes already visible
        assert "Color" not in e
        assert e["Origin"] == "O-2"
        assert c.get("/Products", params={"$filter": "\"Origin='O-2'\"", "$top": 0}).json()["__COUNT"] == 1
    log = httpx.get(base + "/_sim/schema").json()
    assert [ch["op"] for ch in log["changes"]] == ["remove_field", "add_field"]
    assert httpx.post(base + "/_sim/schema", json={"op": "drop_database"}).status_code == 400
    assert (
        httpx.post(
            base + "/_sim/schema", json={"op": "remove_field", "table": "Nope", "name": "x"}
        ).status_code
        == 400
    )
