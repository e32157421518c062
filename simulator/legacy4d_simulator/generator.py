"""Seeded, lazy data generator: any record is a pure function of (seed, table, key).

Nothing is materialised: a 5-million-record dataset costs the live key arrays only (8 bytes per
record), and a page of rows is computed when it is served. Keys of every table are ``1..n``.

Referential integrity holds by construction (order lines are spread evenly over orders, so every
order has at least one line and ``SubTotal`` is the sum of its lines), except for the records the
dirty-data knob plants, which :meth:`Generator.planted_defects` lists exactly.

Planted defect kinds (``dirty`` = fraction of records of each table that get one):

=================== ===================================================================
kind                what the record looks like
=================== ===================================================================
missing_name        Products: ``ProductName`` NULL; Customers: no company, first or last name
missing_sku         Products: ``SKU`` NULL
duplicate_sku       Products: ``SKU`` equal to the SKU of the product with the previous key
negative_money      Products ``Price``/``Cost``; Orders ``SubTotal``/``TotalDue``; OrderLines
                    ``UnitPrice``/``LineTotal``; Invoices ``Amount`` below zero
orphan_reference    Orders.CustomerID, OrderLines.ProductID, Invoices.OrderID,
                    Inventory.ProductID, BillOfMaterials.ComponentProductID point to no record
odd_text            Products.ProductName / Customers.LastName with leading and trailing blanks,
                    a ``\\r\\n`` line break, accents, CJK, an emoji, a ``\\x1f`` control
                    character and a NUL (``\\x00``) character
=================== ===================================================================
"""

from __future__ import annotations

import datetime as dt
import math
from array import array
from collections.abc import Callable, Iterator

from legacy4d_simulator.values import BLANK_DATE

_M64 = (1 << 64) - 1

# Share of the total record count per table, shaped like the AdventureWorks data.
PROPORTIONS: dict[str, float] = {
    "Products": 0.004,
    "Customers": 0.08,
    "Orders": 0.15,
    "OrderLines": 0.60,
    "Invoices": 0.14,
    "Inventory": 0.016,
    "BillOfMaterials": 0.01,
}
_MINIMUM = {
    "Products": 10,
    "Customers": 5,
    "Orders": 5,
    "OrderLines": 5,
    "Invoices": 1,
    "Inventory": 1,
    "BillOfMaterials": 1,
}

DEFECT_KINDS: dict[str, tuple[str, ...]] = {
    "Products": ("missing_name", "missing_sku", "duplicate_sku", "negative_money", "odd_text"),
    "Customers": ("missing_name", "odd_text"),
    "Orders": ("orphan_reference", "negative_money"),
    "OrderLines": ("orphan_reference", "negative_money"),
    "Invoices": ("orphan_reference", "negative_money"),
    "Inventory": ("orphan_reference",),
    "BillOfMaterials": ("orphan_reference",),
}
ODD_TEXT = "  Odd \r\nname \u00e9\u00e8 \u4e2d\u6587 \U0001f6b2 \x1f\x00 end  "
_ORPHAN_OFFSET = 1_000_000_000

_NOUNS = (
    "Frame",
    "Wheel",
    "Fork",
    "Saddle",
    "Chain",
    "Pedal",
    "Helmet",
    "Jersey",
    "Brake",
    "Crankset",
    "Derailleur",
    "Handlebar",
    "Tire",
    "Tube",
    "Bottle",
    "Lock",
    "Pump",
    "Light",
)
_ADJ = ("Road", "Mountain", "Touring", "HL", "ML", "LL", "Sport", "Classic", "Pro", "Women's")
_CATEGORIES = ("Road Frames", "Mountain Bikes", "Wheels", "Helmets", "Jerseys", "Brakes", None, "Chains")
_COLORS = ("Black", "Red", "Silver", "Blue", "Yellow", "Multi", None, None)
_FIRST = (
    "Jon",
    "Eugene",
    "Ruben",
    "Christy",
    "Elizabeth",
    "Julio",
    "Janet",
    "Marco",
    "Rob",
    "Shannon",
    "Jacquelyn",
    "Curtis",
    "Lauren",
    "Ian",
    "Sydney",
    "Chloe",
    "Wyatt",
    "Zoé",
    "Björn",
    "Ana",
)
_LAST = (
    "Yang",
    "Huang",
    "Torres",
    "Zhu",
    "Johnson",
    "Ruiz",
    "Alvarez",
    "Mehta",
    "Verhoff",
    "Carlson",
    "Suarez",
    "Lu",
    "Walker",
    "Jenkins",
    "Bennett",
    "Young",
    "Hill",
    "O'Brien",
    "Müller",
    "Nguyen",
)
_STORES = (
    "A Bike Store",
    "Progressive Sports",
    "Advanced Bike Components",
    "Modular Cycle Systems",
    "Metropolitan Sports Supply",
    "Aerobic Exercise Company",
    "Associated Bikes",
)
_LOCATIONS = (
    "Tool Crib",
    "Sheet Metal Racks",
    "Paint Shop",
    "Frame Welding",
    "Final Assembly",
    "Finished Goods Storage",
    "Miscellaneous Storage",
    "Subassembly",
)
_START = dt.date(2011, 5, 31).toordinal()
_SPAN_DAYS = 1500
_STATUSES = (5, 5, 5, 5, 5, 5, 5, 1, 2, 3, 4, 6)
_KEY_MULT = 0x2545F4914F6CDD1D
_DISCOUNTS = (0.0, 0.0, 0.0, 0.0, 0.02, 0.05, 0.1)
_KEEP = tuple(1 - d for d in _DISCOUNTS)
"""``1 - discount``, the same floats the expression gives."""
_DAY_CACHE_SIZE = 4096
_DAYS = tuple(dt.date.fromordinal(_START + i) for i in range(_DAY_CACHE_SIZE))
"""The dates rows use (offsets from ``_START``; every generated date falls in the first ~1,600)."""


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def table_sizes(scale: int) -> dict[str, int]:
    """Split ``scale`` records over the seven tables with realistic proportions."""
    sizes = {t: max(_MINIMUM[t], int(scale * p)) for t, p in PROPORTIONS.items()}
    sizes["OrderLines"] = max(sizes["OrderLines"], sizes["Orders"])
    sizes["Invoices"] = min(sizes["Invoices"], sizes["Orders"])
    return sizes


class Generator:
    """Row functions for one (scale, seed, dirty) combination."""

    def __init__(self, scale: int, seed: int = 0, dirty: float = 0.0) -> None:
        self.sizes = table_sizes(scale)
        self.seed = seed
        self.dirty = dirty
        self.period = 0 if dirty <= 0 else max(2, round(1 / min(dirty, 0.5)))
        self._salt = {t: _mix(seed * 1_000_003 + i) for i, t in enumerate(PROPORTIONS)}
        self._salt_lines = self._salt["OrderLines"]
        self._n_products = self.sizes["Products"]
        self._n_orders = self.sizes["Orders"]
        self._n_lines = self.sizes["OrderLines"]
        # Every order line reads its product's price, every order and invoice those of its lines:
        # the prices (one float per product, 0.4 % of the records) are computed once.
        self._prices = [0.0] + [self._price_of(k) for k in range(1, self._n_products + 1)]
        # An order's SubTotal sums its lines (four on average), and Orders and Invoices rows both
        # carry it: a real server reads it stored. Filled as orders are first read; 8 bytes per
        # order (1.2 per record), allocated here so that memory does not grow while serving.
        self._subtotals = array("d", [math.nan]) * (self.sizes["Orders"] + 1)
        self.row_functions: dict[str, Callable[[int], tuple]] = {
            "Products": self.product,
            "Customers": self.customer,
            "Orders": self.order,
            "OrderLines": self.order_line,
            "Invoices": self.invoice,
            "Inventory": self.inventory,
            "BillOfMaterials": self.bom,
        }

    # -- defects -------------------------------------------------------------------------------
    def defect(self, table: str, key: int) -> str | None:
        """The defect kind planted in ``table`` record ``key``, or None."""
        if not self.period or (key + self.seed) % self.period:
            return None
        kinds = DEFECT_KINDS[table]
        return kinds[(key // self.period) % len(kinds)]

    def planted_defects(self) -> Iterator[tuple[str, int, str]]:
        """Yield ``(table, key, kind)`` for every planted bad record, without scanning tables."""
        if not self.period:
            return
        for table, n in self.sizes.items():
            first = (-self.seed) % self.period or self.period
            for key in range(first, n + 1, self.period):
                kind = self.defect(table, key)
                if kind:
                    yield table, key, kind

    # -- helpers -------------------------------------------------------------------------------
    def _h(self, table: str, key: int) -> int:
        return _mix(self._salt[table] ^ (key * _KEY_MULT & _M64))

    @staticmethod
    def _day(offset: int) -> dt.date:
        if 0 <= offset < _DAY_CACHE_SIZE:
            return _DAYS[offset]
        return dt.date.fromordinal(_START + offset)

    def _order_first_line(self, order: int) -> int:
        n_o, n_l = self.sizes["Orders"], self.sizes["OrderLines"]
        return 1 + -((-(order - 1) * n_l) // n_o)

    def _order_of_line(self, line: int) -> int:
        return 1 + ((line - 1) * self.sizes["Orders"]) // self.sizes["OrderLines"]

    def _order_day(self, order: int) -> int:
        return (order - 1) * _SPAN_DAYS // self.sizes["Orders"]

    def _price_of(self, product: int) -> float:
        h = self._h("Products", product)
        return round(2 + (h % 350_000) / 100, 2)

    def price(self, product: int) -> float:
        """List price of a product (order lines copy it)."""
        if 0 < product < len(self._prices):
            return self._prices[product]
        return self._price_of(product)

    def _line_total(self, line: int) -> tuple[int, int, float, float, float]:
        return self._line_of_hash(_mix(self._salt_lines ^ (line * _KEY_MULT & _M64)))

    def _line_of_hash(self, h: int) -> tuple[int, int, float, float, float]:
        """Product, quantity, price, discount and total of the order line whose hash is ``h``."""
        product = 1 + h % self._n_products
        qty = 1 + (h >> 20) % 8
        price = self._prices[product]
        d = (h >> 28) % 7
        return product, qty, price, _DISCOUNTS[d], round(price * _KEEP[d] * qty, 6)

    def _subtotal(self, order: int) -> float:
        """Sum of an order's ``LineTotal``s (its lines are consecutive keys), memoised per order."""
        memo = self._subtotals
        if 0 < order < len(memo):
            sub = memo[order]
            if sub == sub:  # NaN: not computed yet
                return sub
        # The lines' totals as _line_total computes them, its hash inlined.
        salt, prices, n_p = self._salt_lines, self._prices, self._n_products
        totals = []
        for k in range(self._order_first_line(order), self._order_first_line(order + 1)):
            x = ((salt ^ (k * _KEY_MULT & _M64)) + 0x9E3779B97F4A7C15) & _M64
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
            h = x ^ (x >> 31)
            totals.append(round(prices[1 + h % n_p] * _KEEP[(h >> 28) % 7] * (1 + (h >> 20) % 8), 6))
        sub = round(sum(totals), 4)
        if 0 < order < len(memo):
            memo[order] = sub
        return sub

    def _order_money(self, order: int) -> tuple[float, float, float, float]:
        sub = self._subtotal(order)
        tax = round(sub * 0.08, 4)
        freight = round(sub * 0.025, 4)
        return sub, tax, freight, round(sub + tax + freight, 4)

    def _customer_of_order(self, order: int) -> int:
        return 1 + self._h("Orders", order) % self.sizes["Customers"]

    # -- rows (tuples in schema field order) ---------------------------------------------------
    def product(self, k: int) -> tuple:
        """Products row."""
        h = self._h("Products", k)
        defect = self.defect("Products", k) if self.period else None
        name: str | None = f"{_ADJ[h % 10]} {_NOUNS[(h >> 8) % 18]} {k}"
        sku: str | None = f"{_NOUNS[(h >> 8) % 18][:2].upper()}-{k:06d}"
        price = self.price(k)
        cost = round(price * 0.6, 4)
        if defect == "missing_name":
            name = None
        elif defect == "missing_sku":
            sku = None
        elif defect == "duplicate_sku":
            other = k - 1 if k > 1 else k + 1
            sku = f"{_NOUNS[(self._h('Products', other) >> 8) % 18][:2].upper()}-{other:06d}"
        elif defect == "negative_money":
            price, cost = -price, -cost
        elif defect == "odd_text":
            name = ODD_TEXT + str(k)
        start = (h >> 16) % 400
        end = BLANK_DATE if h % 5 else self._day(start + 700)
        modified = self._day(start + 30)
        return (
            k,
            name,
            f"Description of product {k}" if h % 3 else None,
            sku,
            _CATEGORIES[(h >> 24) % 8],
            price,
            cost,
            0.2 if h % 4 == 0 else None,
            bool(h & 1),
            not (h & 1),
            _COLORS[(h >> 32) % 8],
            round((h >> 36) % 20000 / 100, 2) if h % 2 else None,
            self._day(start),
            end,
            BLANK_DATE,
            modified,
            (h >> 40) % 86_400_000,
        )

    def customer(self, k: int) -> tuple:
        """Customers row."""
        h = self._h("Customers", k)
        defect = self.defect("Customers", k) if self.period else None
        first: str | None = _FIRST[h % 20]
        last: str | None = _LAST[(h >> 8) % 20]
        company = _STORES[(h >> 16) % 7] if h % 10 == 0 else None
        if defect == "missing_name":
            first = last = company = None
        elif defect == "odd_text":
            last = ODD_TEXT + str(k)
        email = f"{first.lower()}{k}@adventure-works.com" if first else None
        phone = f"{100 + (h >> 24) % 900}-555-{(h >> 34) % 10000:04d}" if first else None
        return (
            k,
            f"AW{k:08d}",
            company,
            first,
            last,
            email,
            phone,
            self._day(1000 + (h >> 44) % 400),
            (h >> 40) % 86_400_000,
        )

    def order(self, k: int) -> tuple:
        """Orders row (``SubTotal`` = sum of its lines' ``LineTotal``)."""
        h = self._h("Orders", k)
        defect = self.defect("Orders", k) if self.period else None
        customer = 1 + h % self.sizes["Customers"]  # _customer_of_order(k), from the same hash
        if defect == "orphan_reference":
            customer = _ORPHAN_OFFSET + k
        sub, tax, freight, total = self._order_money(k)
        if defect == "negative_money":
            sub, total = -sub, -total
        day = self._order_day(k)
        status = _STATUSES[(h >> 8) % 12]
        ship = self._day(day + 7) if status == 5 else BLANK_DATE
        return (
            k,
            f"SO{k}",
            customer,
            self._day(day),
            self._day(day + 12),
            ship,
            status,
            sub,
            tax,
            freight,
            total,
            self._day(day + 7),
            (h >> 40) % 86_400_000,
        )

    def order_line(self, k: int) -> tuple:
        """OrderLines row (60 % of the records: _h, _line_total and the order's day inlined)."""
        h = _mix(self._salt_lines ^ (k * _KEY_MULT & _M64))
        defect = self.defect("OrderLines", k) if self.period else None
        product = 1 + h % self._n_products
        price = self._prices[product]
        qty = 1 + (h >> 20) % 8
        d = (h >> 28) % 7
        total = round(price * _KEEP[d] * qty, 6)
        if defect == "orphan_reference":
            product = _ORPHAN_OFFSET + k
        elif defect == "negative_money":
            price, total = -price, -total
        n_o = self._n_orders
        order = 1 + ((k - 1) * n_o) // self._n_lines
        day = (order - 1) * _SPAN_DAYS // n_o
        return (
            k,
            order,
            product,
            qty,
            price,
            _DISCOUNTS[d],
            total,
            _DAYS[day] if 0 <= day < _DAY_CACHE_SIZE else self._day(day),
            (h >> 40) % 86_400_000,
        )

    def invoice(self, k: int) -> tuple:
        """Invoices row: one per order for the first orders, amounts copied from the order."""
        h = self._h("Invoices", k)
        defect = self.defect("Invoices", k) if self.period else None
        order = 1 + ((k - 1) * self.sizes["Orders"]) // self.sizes["Invoices"]
        customer = self._customer_of_order(order)
        _sub, tax, _freight, total = self._order_money(order)
        day = self._order_day(order) + 7
        paid = h % 6 != 0
        paid_date = self._day(day + 5 + h % 29) if paid else BLANK_DATE
        if defect == "orphan_reference":
            order = _ORPHAN_OFFSET + k
        elif defect == "negative_money":
            total = -total
        return (
            k,
            f"INV-{k:07d}",
            order,
            customer,
            self._day(day),
            self._day(day + 30),
            total,
            tax,
            paid,
            paid_date,
            paid_date if paid else self._day(day),
            (h >> 40) % 86_400_000,
        )

    def inventory(self, k: int) -> tuple:
        """Inventory row."""
        h = self._h("Inventory", k)
        defect = self.defect("Inventory", k) if self.period else None
        product = 1 + (k - 1) % self.sizes["Products"]
        if defect == "orphan_reference":
            product = _ORPHAN_OFFSET + k
        return (
            k,
            product,
            _LOCATIONS[h % 8],
            "N/A" if h % 4 == 0 else "ABCDEFGH"[(h >> 4) % 8],
            (h >> 8) % 30,
            (h >> 16) % 1000,
            self._day(1100 + (h >> 28) % 300),
            (h >> 40) % 86_400_000,
        )

    def bom(self, k: int) -> tuple:
        """BillOfMaterials row."""
        h = self._h("BillOfMaterials", k)
        defect = self.defect("BillOfMaterials", k) if self.period else None
        n_p = self.sizes["Products"]
        parent = None if h % 25 == 0 else 1 + (h >> 8) % n_p
        component = 1 + (h >> 24) % n_p
        if defect == "orphan_reference":
            component = _ORPHAN_OFFSET + k
        start = (h >> 32) % 300
        return (
            k,
            parent,
            component,
            float(1 + (h >> 40) % 4),
            "EA",
            (h >> 44) % 5,
            self._day(start),
            self._day(start + 900) if h % 13 == 0 else BLANK_DATE,
            self._day(start),
            0,
        )
