"""The cutover rules that need no services: drift severities, coverage findings, freshness
limits, notifier configuration (issue 18)."""

from __future__ import annotations

import datetime as dt

import pytest

from legacy_sync import coverage, freshness, notify
from legacy_sync.drift import Catalog, Severity, compare
from legacy_sync.registry import get_table

CUSTOMERS = get_table("Customers")


def _catalog(**changes: dict | None) -> Catalog:
    attributes = {name: {"type": "string"} for name in CUSTOMERS.attributes}
    attributes["CustomerID"] = {"type": "long", "identifying": True}
    attributes["__GlobalStamp"] = {"type": "long64"}
    attributes["Note"] = {"type": "string"}  # a field the sync does not read
    for name, value in changes.items():
        if value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = value
    return Catalog(True, attributes)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (_catalog(Region={"type": "string"}), [("Region", "added", Severity.INFO)]),
        (_catalog(Phone={"type": "number"}), [("Phone", "retyped", Severity.WARNING)]),
        (_catalog(Phone={"type": "string", "length": 20}), [("Phone", "resized", Severity.WARNING)]),
        (_catalog(Email=None), [("Email", "removed", Severity.BREAKING)]),
        (_catalog(Note=None), [("Note", "removed", Severity.INFO)]),
        (_catalog(__GlobalStamp=None), [("__GlobalStamp", "removed", Severity.WARNING)]),
        (_catalog(CustomerID=None), [("CustomerID", "removed", Severity.BREAKING)]),
        (
            _catalog(CustomerID={"type": "string", "identifying": True}),
            [("CustomerID", "retyped", Severity.BREAKING)],
        ),
        (
            _catalog(CustomerID={"type": "long"}, Note={"type": "string", "identifying": True}),
            [("Note", "key", Severity.BREAKING)],
        ),
        (Catalog(False, {}), [(None, "unexposed", Severity.BREAKING)]),
        (_catalog(), []),
    ],
    ids=[
        "added",
        "retyped",
        "resized",
        "mapped-removed",
        "unmapped-removed",
        "tracking-off",
        "key-removed",
        "key-retyped",
        "key-moved",
        "unexposed",
        "unchanged",
    ],
)
def test_drift_severities(after: Catalog, expected: list[tuple]) -> None:
    changes = compare(_catalog(), after, CUSTOMERS)
    assert [(c.attribute, c.change, c.severity) for c in changes] == expected
    assert all(c.message for c in changes)


def test_a_table_exposed_again_is_info_and_compared_with_what_it_had() -> None:
    before = Catalog(False, _catalog().attributes)  # un-exposed: the last attributes are kept
    changes = compare(before, _catalog(Region={"type": "string"}), CUSTOMERS)
    assert [(c.change, c.severity) for c in changes] == [("exposed", Severity.INFO), ("added", Severity.INFO)]


def test_catalog_keeps_only_what_a_change_of_matters() -> None:
    raw = {
        "Phone": {"name": "Phone", "kind": "storage", "type": "string", "fieldPos": 7, "indexed": True},
        "orders": {"name": "orders", "kind": "relatedEntities", "type": "OrdersSelection"},
        "CustomerID": {"name": "CustomerID", "kind": "storage", "type": "long", "identifying": True},
    }
    assert Catalog.from_4d(raw).attributes == {
        "Phone": {"type": "string"},
        "CustomerID": {"type": "long", "identifying": True},
    }


def test_coverage_findings() -> None:
    def dc(name: str, fields: dict[str, str], key: list[str]) -> dict:
        return {
            "name": name,
            "attributes": [{"name": n, "kind": "storage", "type": t} for n, t in fields.items()],
            "key": [{"name": k} for k in key],
        }

    customers = {f: "string" for f in CUSTOMERS.attributes if f != "Email"} | {
        "CustomerID": "long",
        "Region": "string",
    }
    products = {f: "string" for f in get_table("Products").attributes} | {"ProductID": "long"}
    others = [
        dc(
            t,
            {get_table(t).key: "long", **{f: "string" for f in get_table(t).attributes[1:]}},
            [get_table(t).key],
        )
        for t in ("Orders", "OrderLines", "Inventory", "BillOfMaterials")
    ]
    report = coverage.assess(
        [
            dc("Customers", customers, ["CustomerID"]),
            dc("Products", products, ["ProductID"]),
            dc("Suppliers", {"SupplierID": "long", "Name": "string"}, ["SupplierID"]),
            dc("Notes", {"A": "long", "B": "long"}, ["A", "B"]),
            dc("__DeletedRecords", {"__PrimaryKey": "string"}, ["__PrimaryKey"]),
            *others,
        ],
        {"Suppliers": (None, 12), "Products": (set(products) - {"Color"}, 10)},
    )
    assert report.lines() == [
        ("table not synced", "Suppliers (12 records; fields: SupplierID, Name)"),
        ("table not synced", "Notes (records unknown; fields: A, B)"),
        ("field not synced", "Customers.Region"),
        ("not sent", "Customers.Email: gone from 4D's $catalog"),
        ("not sent", "Products.Color: in $catalog but not in 4D's records (a privilege hides it)"),
        ("not sent", "Invoices: 4D no longer exposes the table"),
        ("no usable key", "Notes: 4D names 2 primary key fields (A, B)"),
    ]
    assert not report.complete and report.verdict().startswith("No: 2 table(s) and 1 field(s)")


def test_freshness_limits_and_ages() -> None:
    assert freshness.schedule_interval("@hourly") == dt.timedelta(hours=1)
    assert freshness.schedule_interval("15 */2 * * *") == dt.timedelta(hours=2)
    now = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    rows = [
        {
            "table_name": "Products",
            "last_success": now - dt.timedelta(hours=4),
            "last_success_run": "r1",
            "first_seen": now - dt.timedelta(days=1),
        },
        {
            "table_name": "Customers",
            "last_success": now - dt.timedelta(hours=2),
            "last_success_run": "r2",
            "first_seen": now - dt.timedelta(days=1),
        },
        {
            "table_name": "Orders",
            "last_success": None,
            "last_success_run": None,
            "first_seen": now - dt.timedelta(hours=5),
        },
    ]
    stale = {a.table for a in freshness.ages(rows, now, "@hourly") if a.stale}
    assert stale == {"Products", "Orders"}  # tables never tried (the rest) are not stale


def test_notifier_configuration() -> None:
    assert notify.configured_notifiers("") == []
    [(_channel, notifier)] = notify.configured_notifiers("tests.capture_notifier:CapturingNotifier")
    assert type(notifier).__name__ == "CapturingNotifier"
    assert [c for c, _ in notify.configured_notifiers("slack, webhook")] == ["slack", "webhook"]
    with pytest.raises(ValueError, match="unknown channel 'pager'"):
        notify.configured_notifiers("pager")
    with pytest.raises(TypeError, match="not an Airflow BaseNotifier"):
        notify.configured_notifiers("legacy_sync.notify:Message")
