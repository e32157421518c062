"""Pages as the hook asks for them, byte for byte: the memos that make serving cheaper
(``generator``: prices, order subtotals, dates; ``encoding``/``values``: wire dates and
``__TIMESTAMP`` prefixes) change no byte, and a mutation shows on the very next page."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson
from sim_helpers import rest

from legacy4d_simulator import Dataset

# What the hook's keyset paging asks (plugins/legacy_sync/fourd/client.py, page size 2,000):
# the first page, then "key >= last" with one record more.
ATTRIBUTES = {
    "Orders": "OrderID,OrderNumber,CustomerID,OrderDate,DueDate,ShipDate,Status,SubTotal,TaxAmt,"
    "Freight,TotalDue,ModifiedDate,ModifiedTime,__GlobalStamp",
    "Invoices": "InvoiceID,InvoiceNumber,OrderID,CustomerID,InvoiceDate,DueDate,Amount,TaxAmt,IsPaid,"
    "PaidDate,ModifiedDate,ModifiedTime,__GlobalStamp",
    "OrderLines": "OrderLineID,OrderID,ProductID,Quantity,UnitPrice,UnitPriceDiscount,LineTotal,"
    "ModifiedDate,ModifiedTime,__GlobalStamp",
}
KEYS = {"Orders": "OrderID", "Invoices": "InvoiceID", "OrderLines": "OrderLineID", "Products": "ProductID"}

# sha256 of each page served by the simulator before its serving cost was cut (main at f97de42),
# for Dataset.generate(20_000, seed=1, dirty=0.02). A change here changes the generated data or its
# wire form: make it on purpose, never as a side effect of making the simulator faster.
GOLDEN = {
    "Invoices": "936f7194388a5fa541e28cef36eb115e7f763c08b81cbd09f16fbeec4194d022",
    "Orders": "cca8c8f5e595bd3165b83b2a15b2b7388d2f6156ee69a43f766246f5d940aca1",
    "OrderLines>=1500": "4690bf8098efee0c0e08505d4779b1ed3d429a1b51071b307fb7564355b2caa5",
    "Products all attributes": "3468986d59abf15330550d115351472602fb23aca8912691d11b9e7159ed1438",
}


def keyset_page(c: httpx.Client, table: str, after: int | None = None, top: int = 2000) -> bytes:
    params: dict[str, Any] = {"$orderby": f'"{KEYS[table]} asc"', "$top": top}
    if table in ATTRIBUTES:
        params["$attributes"] = ATTRIBUTES[table]
    if after is not None:
        params |= {"$filter": f'"{KEYS[table]}>=:1"', "$params": f"'[{after}]'", "$top": top + 1}
    r = c.get(f"/{table}", params=params)
    assert r.status_code == 200, r.text
    return r.content


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_pages_are_the_reference_bytes_whatever_the_memos_hold(make_server) -> None:
    """Invoices served before any order (order subtotals not memoised yet) and again after the
    Orders pages (memoised) are the same bytes, and every page is the reference's."""
    sim = make_server(Dataset.generate(20_000, seed=1, dirty=0.02))
    with rest(sim) as c:
        cold = keyset_page(c, "Invoices")
        orders = keyset_page(c, "Orders")
        warm = keyset_page(c, "Invoices")
        assert warm == cold
        assert keyset_page(c, "Orders") == orders
        got = {
            "Invoices": digest(cold),
            "Orders": digest(orders),
            "OrderLines>=1500": digest(keyset_page(c, "OrderLines", after=1500)),
            "Products all attributes": digest(keyset_page(c, "Products")),
        }
    assert got == GOLDEN


def test_a_mutation_through_the_control_api_shows_on_the_next_page(make_server) -> None:
    """A page, a record updated (and one deleted, one inserted) through ``POST /_sim/mutate``,
    the same page again: the record has its new values and stamps, everything else is
    byte-identical; the Invoices, copied from the generated orders, do not change."""
    sim = make_server(Dataset.generate(20_000, seed=1))
    with rest(sim) as c:
        before = keyset_page(c, "Orders", after=100, top=300)
        invoices = keyset_page(c, "Invoices", after=100, top=300)
        old = {e["OrderID"]: e for e in orjson.loads(before)["__ENTITIES"]}
        r = httpx.post(
            sim.base_url + "/_sim/mutate",
            json=[
                {"op": "update", "table": "Orders", "key": 150, "changes": {"SubTotal": 12.5, "Status": 6}},
                {"op": "delete", "table": "Orders", "key": 151},
            ],
        )
        assert r.status_code == 200, r.text
        stamp = r.json()["global_stamp"]
        after = keyset_page(c, "Orders", after=100, top=300)
        invoices_after = keyset_page(c, "Invoices", after=100, top=300)
    # Only the envelope's datastore stamp moved (its key order puts __ENTITIES last).
    assert invoices_after.partition(b'"__ENTITIES":')[2] == invoices.partition(b'"__ENTITIES":')[2]
    assert orjson.loads(invoices_after)["__GlobalStamp"] == stamp

    page = orjson.loads(after)
    new = {e["OrderID"]: e for e in page["__ENTITIES"]}
    changed = new[150]
    assert changed["SubTotal"] == 12.5 and changed["Status"] == 6
    assert changed["__STAMP"] == old[150]["__STAMP"] + 1 == 2
    assert changed["__GlobalStamp"] == stamp - 2  # the update, then the delete's own stamp
    assert changed["__TIMESTAMP"] != old[150]["__TIMESTAMP"]
    assert 151 not in new and page["__COUNT"] == orjson.loads(before)["__COUNT"] - 1
    assert page["__GlobalStamp"] == stamp
    # Byte for byte: the page before, with the deleted record gone (the page reaches one record
    # further), record 150 replaced and the envelope's stamp and count moved on.
    expected = orjson.loads(before)
    expected["__GlobalStamp"] = stamp
    expected["__COUNT"] -= 1
    kept = [changed if e["OrderID"] == 150 else e for e in expected["__ENTITIES"] if e["OrderID"] != 151]
    expected["__ENTITIES"] = [*kept, new[max(new)]]
    assert max(new) == max(old) + 1
    assert orjson.dumps(expected) == after
    assert orjson.dumps(orjson.loads(before)) == before  # so the comparison above is of bytes
