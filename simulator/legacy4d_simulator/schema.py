"""The legacy ERP's REST-exposed structure (``shared/docs/legacy-4d-schema.md``) as data.

Field order here is the order 4D serves attributes in (its ``fieldPos``). Relation attributes are
not in the schema doc; they are what a 4D designer's links look like over REST (``__deferred``
stubs) and let the simulator show relation encodings without changing the plain FK fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# 4D catalog type names (protocol doc section 1 / 3.4).
STRING, NUMBER, LONG, LONG64, WORD, BOOL, DATE, DURATION = (
    "string",
    "number",
    "long",
    "long64",
    "word",
    "bool",
    "date",
    "duration",
)
IMAGE, OBJECT, BLOB, UUID = "image", "object", "blob", "uuid"
NUMERIC_TYPES = frozenset({NUMBER, LONG, LONG64, WORD, DURATION})

GLOBAL_STAMP = "__GlobalStamp"
DELETED_RECORDS = "__DeletedRecords"


@dataclass(frozen=True)
class Field:
    """One storage attribute.

    ``length`` is an Alpha field's size (None: Text); ``$catalog`` reports both as ``string``.
    ``added`` marks a field added at run time: 4D numbers it after every existing field, so it
    comes after ``__GlobalStamp`` in ``$catalog`` and entities.
    """

    name: str
    type: str
    indexed: bool = False
    length: int | None = None
    added: bool = False


@dataclass(frozen=True)
class Relation:
    """A relation attribute: N->1 (``many_to_one``) via ``fk`` or its 1->N inverse."""

    name: str
    target: str
    fk: str
    many_to_one: bool
    inverse: str


@dataclass(frozen=True)
class TableSchema:
    """A dataclass: its number, primary key, storage fields (PK first) and relations."""

    name: str
    number: int
    key: str
    fields: tuple[Field, ...]
    relations: tuple[Relation, ...] = ()
    index: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.index.update({f.name: i for i, f in enumerate(self.fields)})

    def field(self, name: str) -> Field | None:
        """Return the storage field called ``name`` (case-sensitive) or None."""
        i = self.index.get(name)
        return None if i is None else self.fields[i]

    def relation(self, name: str) -> Relation | None:
        """Return the relation attribute called ``name`` or None."""
        return next((r for r in self.relations if r.name == name), None)


def _f(spec: str) -> tuple[Field, ...]:
    """Parse ``"Name:type*"`` items (``*`` = indexed) separated by spaces."""
    out = []
    for item in spec.split():
        name, typ = item.split(":")
        out.append(Field(name, typ.rstrip("*"), indexed=typ.endswith("*")))
    return tuple(out)


_AUDIT = " ModifiedDate:date ModifiedTime:duration"


def _rel(name: str, target: str, fk: str, inverse: str) -> Relation:
    return Relation(name, target, fk, True, inverse)


def _inv(name: str, source: str, fk: str, inverse: str) -> Relation:
    return Relation(name, source, fk, False, inverse)


TABLES: tuple[TableSchema, ...] = (
    TableSchema(
        "Products",
        1,
        "ProductID",
        _f(
            "ProductID:long* ProductName:string Description:string SKU:string* Category:string Price:number"
            " Cost:number TaxRate:number IsPurchased:bool IsManufactured:bool Color:string Weight:number"
            " SellStartDate:date SellEndDate:date DiscontinuedDate:date" + _AUDIT
        ),
        (
            _inv("orderLines", "OrderLines", "ProductID", "product"),
            _inv("inventory", "Inventory", "ProductID", "product"),
        ),
    ),
    TableSchema(
        "Customers",
        2,
        "CustomerID",
        _f(
            "CustomerID:long* AccountNumber:string* CompanyName:string FirstName:string LastName:string"
            " Email:string Phone:string" + _AUDIT
        ),
        (
            _inv("orders", "Orders", "CustomerID", "customer"),
            _inv("invoices", "Invoices", "CustomerID", "customer"),
        ),
    ),
    TableSchema(
        "Orders",
        3,
        "OrderID",
        _f(
            "OrderID:long* OrderNumber:string* CustomerID:long* OrderDate:date DueDate:date ShipDate:date"
            " Status:word SubTotal:number TaxAmt:number Freight:number TotalDue:number" + _AUDIT
        ),
        (
            _rel("customer", "Customers", "CustomerID", "orders"),
            _inv("lines", "OrderLines", "OrderID", "order"),
            _inv("invoices", "Invoices", "OrderID", "order"),
        ),
    ),
    TableSchema(
        "OrderLines",
        4,
        "OrderLineID",
        _f(
            "OrderLineID:long* OrderID:long* ProductID:long* Quantity:long UnitPrice:number"
            " UnitPriceDiscount:number LineTotal:number" + _AUDIT
        ),
        (_rel("order", "Orders", "OrderID", "lines"), _rel("product", "Products", "ProductID", "orderLines")),
    ),
    TableSchema(
        "Invoices",
        5,
        "InvoiceID",
        _f(
            "InvoiceID:long* InvoiceNumber:string* OrderID:long* CustomerID:long* InvoiceDate:date"
            " DueDate:date"
            " Amount:number TaxAmt:number IsPaid:bool PaidDate:date" + _AUDIT
        ),
        (
            _rel("order", "Orders", "OrderID", "invoices"),
            _rel("customer", "Customers", "CustomerID", "invoices"),
        ),
    ),
    TableSchema(
        "Inventory",
        6,
        "InventoryID",
        _f(
            "InventoryID:long* ProductID:long* LocationName:string Shelf:string Bin:long Quantity:long"
            + _AUDIT
        ),
        (_rel("product", "Products", "ProductID", "inventory"),),
    ),
    TableSchema(
        "BillOfMaterials",
        7,
        "BOMID",
        _f(
            "BOMID:long* ParentProductID:long* ComponentProductID:long* Quantity:number UnitOfMeasure:string"
            " BOMLevel:word StartDate:date EndDate:date" + _AUDIT
        ),
        (
            _rel("parentProduct", "Products", "ParentProductID", ""),
            _rel("componentProduct", "Products", "ComponentProductID", ""),
        ),
    ),
)

# Optional attributes (``SimulatorConfig.showcase_fields``) so that every 4D type encoding of the
# protocol doc (image, object, blob, uuid) can be demonstrated; they are not part of the ERP.
SHOWCASE_FIELDS: tuple[Field, ...] = _f("Photo:image Specs:object Manual:blob ProductUUID:uuid")

DELETED_SCHEMA = TableSchema(
    DELETED_RECORDS,
    8,
    "ID",
    _f("ID:long* __PrimaryKey:string __Stamp:long64* __TableName:string __TableNumber:long"),
)

TABLES_BY_NAME: dict[str, TableSchema] = {t.name: t for t in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES_BY_NAME)
