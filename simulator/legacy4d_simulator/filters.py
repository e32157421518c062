"""The ``$filter`` language: tokenizer, parser and compiler to an index plan plus a predicate.

Grammar (protocol doc 2.1, REST page + ``dataClass.query()``)::

    expr       := term { (OR | '|' | '||') term }
    term       := factor { (AND | '&' | '&&' | EXCEPT) factor }
    factor     := [NOT] '(' expr ')' | comparison
    comparison := attribute op value
    op         := = == === != !== # > >= < <= % begin IS [NOT] IN
    value      := 'text' | "text" | word | :n | [v, ...] | true | false | null

AND/EXCEPT bind tighter than OR (4D's precedence is not documented; this is the least surprising).
Comparisons on text are case- and diacritic-insensitive; ``@`` is the wildcard for ``=``/``!=``.
Dates are ``'YYYY-MM-DD'`` (``'d!m!yyyy'`` also accepted unless ``strict_dates``).
Conjunctions on the primary key or ``__GlobalStamp`` become index ranges (see :class:`Plan`), so
keyset paging and change-tracking windows never scan the table.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from legacy4d_simulator import errors
from legacy4d_simulator.schema import BOOL, DATE, GLOBAL_STAMP, NUMERIC_TYPES, TableSchema
from legacy4d_simulator.values import BLANK_DATE, WireValue, parse_date

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lpar>\() | (?P<rpar>\)) | (?P<list>\[[^\]]*\]) |
      (?P<ph>:\d+) |
      (?P<op>===|!==|==|!=|>=|<=|=|\#|>|<|%) |
      (?P<logic>&&|\|\||&|\|) |
      (?P<sq>'(?:[^']*)') | (?P<dq>"(?:[^"]*)") |
      (?P<open>['"]) |
      (?P<word>[^\s()=!<>\#%&|\[\]"',]+)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"begin": "begin", "is": "===", "in": "in"}
_LOGIC = {"and": "and", "&": "and", "&&": "and", "or": "or", "|": "or", "||": "or", "except": "except"}

Predicate = Callable[[int, Any, Any], bool]
"""pred(key, row tuple | None, meta | None) -> bool."""


@dataclass
class Tok:
    kind: str
    text: str


def tokenize(text: str) -> list[Tok]:
    """Split a filter string; raises 1808/1809 on an unbalanced quote, 1201 on garbage."""
    toks: list[Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise errors.query_error(f"Cannot analyse the query string near position {pos}")
        kind = m.lastgroup
        assert kind is not None
        if kind == "open":
            code = 1808 if m.group("open") == "'" else 1809
            raise errors.RestError(
                500, (code, "Missing closing quote in the query string"), (1201, "Cannot analyse the query")
            )
        toks.append(Tok(kind, m.group(kind)))
        pos = m.end()
    return toks


# -- AST -----------------------------------------------------------------------------------------
@dataclass
class Cmp:
    attr: str
    op: str
    value: Any  # ("lit", text, quoted) | ("ph", n) | ("list", [...])


@dataclass
class Node:
    op: str  # and | or | except | not
    args: list[Any] = field(default_factory=list)


class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise errors.query_error("Unexpected end of the query string")
        self.i += 1
        return tok

    def logic(self) -> str | None:
        tok = self.peek()
        if tok and tok.kind in ("logic", "word"):
            return _LOGIC.get(tok.text.lower())
        return None

    def expr(self) -> Any:
        node = self.term()
        while self.logic() == "or":
            self.take()
            node = Node("or", [node, self.term()])
        return node

    def term(self) -> Any:
        node = self.factor()
        while (op := self.logic()) in ("and", "except"):
            self.take()
            node = Node(op, [node, self.factor()])
        return node

    def factor(self) -> Any:
        tok = self.take()
        if tok.kind == "lpar":
            node = self.expr()
            if self.take().kind != "rpar":
                raise errors.query_error("Missing closing parenthesis")
            return node
        if tok.kind == "word" and tok.text.lower() == "not" and self.peek() and self.peek().kind == "lpar":
            return Node("not", [self.factor()])
        if tok.kind != "word":
            raise errors.query_error(f"Attribute expected, found {tok.text!r}")
        attr = tok.text
        op_tok = self.take()
        if op_tok.kind == "op":
            op = op_tok.text
        elif op_tok.kind == "word" and op_tok.text.lower() in _WORD_OPS:
            op = _WORD_OPS[op_tok.text.lower()]
            nxt = self.peek()
            if op == "===" and nxt and nxt.kind == "word" and nxt.text.lower() == "not":
                self.take()
                op = "!=="
        else:
            raise errors.RestError(
                500, (1112, f"Wrong comparator {op_tok.text!r}"), (1201, "Cannot analyse the query")
            )
        v = self.take()
        if v.kind == "ph":
            value: Any = ("ph", int(v.text[1:]))
        elif v.kind in ("sq", "dq"):
            value = ("lit", v.text[1:-1], True)
        elif v.kind == "word":
            value = ("lit", v.text, False)
        elif v.kind == "list":
            items = [s.strip() for s in v.text[1:-1].split(",") if s.strip()]
            value = ("list", [(s[1:-1], True) if s[:1] in "'\"" else (s, False) for s in items])
        else:
            raise errors.query_error(f"Value expected after {attr} {op}")
        return Cmp(attr, op, value)


@lru_cache(maxsize=256)
def parse(text: str) -> Any:
    """Parse a ``$filter`` (surrounding double quotes already stripped) into an AST."""
    p = _Parser(tokenize(text))
    node = p.expr()
    if p.peek() is not None:
        raise errors.query_error(f"Cannot analyse the query string near {p.peek().text!r}")
    return node


# -- compilation ---------------------------------------------------------------------------------
def fold(value: Any) -> str:
    """Case- and diacritic-insensitive form of a text (4D's ``=`` semantics)."""
    s = unicodedata.normalize("NFKD", str(value))
    return "".join(c for c in s if not unicodedata.combining(c)).casefold()


def _sortable_date(v: Any) -> Any:
    return "" if v is BLANK_DATE else v.isoformat()


@dataclass
class Plan:
    """Index ranges from the top-level AND chain plus the residual predicate.

    ``pk_lo..pk_hi`` and ``gs_lo..gs_hi`` are inclusive bounds; ``pk_in`` a key list from
    ``PK IN [...]``/``PK = v``; ``residual`` None when the indexes answer the whole filter.
    """

    pk_lo: int | None = None
    pk_hi: int | None = None
    gs_lo: int | None = None
    gs_hi: int | None = None
    pk_in: list[int] | None = None
    residual: Predicate | None = None
    needs_row: bool = False
    empty: bool = False


class Compiler:
    """Compile an AST against one dataclass with ``$params`` values."""

    def __init__(
        self,
        schema: TableSchema,
        params: list[Any],
        *,
        tracked: bool,
        strict_dates: bool,
        resolve_relation: Callable[[str, str], tuple[TableSchema, Callable[[int], Any]] | None] | None = None,
        opaque: Collection[str] = (),
        pk_of: Callable[[int], int] | None = None,
        hidden: Collection[str] = (),
        converters: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        self.hidden = hidden
        """Fields not exposed to this session: filtering on them is an unknown attribute (1500)."""
        self.converters = converters or {}
        """Read conversions of fields retyped at run time (structure.py)."""
        self.pk_of = pk_of
        """Record id -> primary key, for tables with twins (their ids are not keys)."""
        self.opaque = opaque
        """Fields that may hold WireValues: the query engine reads those values as NULL."""
        self.schema = schema
        self.params = params
        self.tracked = tracked
        self.strict_dates = strict_dates
        self.resolve_relation = resolve_relation
        self.needs_row = False

    # values
    def _raw(self, value: Any) -> tuple[Any, bool, bool]:
        """-> (python value, was_quoted_or_param, from_placeholder)."""
        kind = value[0]
        if kind == "ph":
            n = value[1]
            if n < 1 or n > len(self.params) or self.params[n - 1] is None:
                raise errors.placeholder_missing(n)
            return self.params[n - 1], True, True
        if kind == "list":
            return [v for v, _q in value[1]], True, False
        _, text, quoted = value
        if not quoted:
            low = text.lower()
            if low == "null":
                return None, False, False
            if low in ("true", "false"):
                return low == "true", False, False
        return text, quoted, False

    def _typed(self, typ: str, v: Any, from_ph: bool, n: Any = None) -> Any:
        if typ in NUMERIC_TYPES:
            if isinstance(v, bool):
                return int(v)
            try:
                return float(v) if not isinstance(v, (int, float)) else v
            except (TypeError, ValueError):
                raise errors.RestError(
                    500,
                    (1280, f"Wrong type of value {v!r} for a numeric attribute"),
                    (1201, "Cannot analyse the query"),
                ) from None
        if typ == BOOL:
            return v if isinstance(v, bool) else str(v).lower() in ("true", "1")
        if typ == DATE:
            if from_ph and self.strict_dates:
                raise errors.placeholder_missing(n or 1)
            text = str(v)
            if self.strict_dates and "!" in text:
                raise errors.query_error(f"Cannot analyse the date {text!r}")
            try:
                return _sortable_date(parse_date(text))
            except (ValueError, TypeError):
                raise errors.query_error(f"Cannot analyse the date {text!r}") from None
        return fold(v)

    def _getter(self, attr: str) -> tuple[str, Callable[[int, Any, Any], Any]]:
        schema = self.schema
        if attr == schema.key:
            pk_of = self.pk_of
            if pk_of is not None:
                return schema.fields[0].type, lambda k, r, m: pk_of(k)
            return schema.fields[0].type, lambda k, r, m: k
        if attr == GLOBAL_STAMP and self.tracked:
            return "long64", lambda k, r, m: m[1]
        f = schema.field(attr) if attr not in self.hidden else None
        if f is not None:
            i = schema.index[attr]
            self.needs_row = True
            conv = self.converters.get(attr)
            if conv is not None:
                return f.type, lambda k, r, m: None if isinstance(v := conv(r[i]), WireValue) else v
            if attr in self.opaque:
                return f.type, lambda k, r, m: None if isinstance(v := r[i], WireValue) else v
            return f.type, lambda k, r, m: r[i]
        if "." in attr and self.resolve_relation:
            rel, _, sub = attr.partition(".")
            found = self.resolve_relation(rel, sub)
            if found:
                self.needs_row = True
                typ, fetch = found
                return typ, lambda k, r, m: fetch(r)
        raise errors.attribute_not_found(attr, schema.name, build=1201)

    def compile(self, node: Any) -> Predicate:
        """The predicate of an AST node."""
        if isinstance(node, Node):
            subs = [self.compile(a) for a in node.args]
            if node.op == "and":
                a, b = subs
                return lambda k, r, m: a(k, r, m) and b(k, r, m)
            if node.op == "or":
                a, b = subs
                return lambda k, r, m: a(k, r, m) or b(k, r, m)
            if node.op == "except":
                a, b = subs
                return lambda k, r, m: a(k, r, m) and not b(k, r, m)
            a = subs[0]
            return lambda k, r, m: not a(k, r, m)
        return self._cmp(node)

    def _cmp(self, c: Cmp) -> Predicate:
        typ, get = self._getter(c.attr)
        raw, _quoted, from_ph = self._raw(c.value)
        n = c.value[1] if c.value[0] == "ph" else None
        op = c.op
        is_text = typ not in NUMERIC_TYPES and typ not in (BOOL, DATE)
        norm: Callable[[Any], Any]
        if typ == DATE:

            def norm(x: Any) -> Any:
                return None if x is None else _sortable_date(x)
        elif is_text:
            norm = fold
        else:

            def norm(x: Any) -> Any:
                return x

        if raw is None:  # attr = null / attr != null
            if op in ("=", "==", "==="):
                return lambda k, r, m: get(k, r, m) is None
            if op in ("!=", "#", "!=="):
                return lambda k, r, m: get(k, r, m) is not None
            raise errors.query_error("null can only be compared with = or !=")
        if op == "in":
            values = raw if isinstance(raw, list) else [raw]
            wanted = {self._typed(typ, v, from_ph, n) for v in values}
            return lambda k, r, m: (x := get(k, r, m)) is not None and norm(x) in wanted
        value = self._typed(typ, raw, from_ph, n)
        if op == "begin" or (is_text and op in ("=", "==", "!=", "#") and "@" in value):
            pattern = (
                (re.escape(value) + ".*")
                if op == "begin"
                else ".*".join(re.escape(p) for p in value.split("@"))
            )
            rx = re.compile(pattern, re.DOTALL)
            positive = op not in ("!=", "#")
            return lambda k, r, m: (
                ((x := get(k, r, m)) is not None and rx.fullmatch(fold(x)) is not None) is positive
            )
        if op == "%":
            return lambda k, r, m: (x := get(k, r, m)) is not None and value in re.split(r"\W+", fold(x))
        if op in ("=", "==", "==="):
            return lambda k, r, m: (x := get(k, r, m)) is not None and norm(x) == value
        if op in ("!=", "#", "!=="):
            return lambda k, r, m: (x := get(k, r, m)) is None or norm(x) != value
        cmp = {
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
        }[op]
        return lambda k, r, m: (x := get(k, r, m)) is not None and cmp(norm(x), value)

    def plan(self, node: Any) -> Plan:
        """Split the top-level AND chain into index bounds and a residual predicate."""
        conj: list[Any] = []

        def flatten(n: Any) -> None:
            if isinstance(n, Node) and n.op == "and":
                for a in n.args:
                    flatten(a)
            else:
                conj.append(n)

        flatten(node)
        plan = Plan()
        rest: list[Any] = []
        for c in conj:
            if not (isinstance(c, Cmp) and self._index_bound(c, plan)):
                rest.append(c)
        if rest:
            self.needs_row = False
            preds = [self.compile(c) for c in rest]
            plan.residual = preds[0] if len(preds) == 1 else (lambda k, r, m: all(p(k, r, m) for p in preds))
            plan.needs_row = self.needs_row
        return plan

    def _index_bound(self, c: Cmp, plan: Plan) -> bool:
        if c.attr == self.schema.key:
            kind = "pk"
        elif c.attr == GLOBAL_STAMP and self.tracked:
            kind = "gs"
        else:
            return False
        if c.op not in ("=", "==", "===", ">", ">=", "<", "<=", "in"):
            return False
        raw, _q, from_ph = self._raw(c.value)
        if raw is None:
            return False
        if c.op == "in":
            if kind != "pk":
                return False
            values = raw if isinstance(raw, list) else [raw]
            keys = [self._typed("long", v, from_ph) for v in values]
            plan.pk_in = sorted({int(v) for v in keys if float(v).is_integer()})
            return True
        v = self._typed("long", raw, from_ph)
        lo_attr, hi_attr = f"{kind}_lo", f"{kind}_hi"
        lo = hi = None
        if c.op in ("=", "==", "==="):
            if not float(v).is_integer():
                plan.empty = True
                return True
            lo = hi = int(v)
        elif c.op == ">":
            lo = math.floor(v) + 1
        elif c.op == ">=":
            lo = math.ceil(v)
        elif c.op == "<":
            hi = math.ceil(v) - 1
        else:
            hi = math.floor(v)
        if lo is not None:
            cur = getattr(plan, lo_attr)
            setattr(plan, lo_attr, lo if cur is None else max(cur, lo))
        if hi is not None:
            cur = getattr(plan, hi_attr)
            setattr(plan, hi_attr, hi if cur is None else min(cur, hi))
        return True


def strip_quotes(text: str, quote: str) -> str:
    """Remove one pair of surrounding ``quote`` characters (how 4D clients wrap values)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == quote and text[-1] == quote:
        return text[1:-1]
    return text
