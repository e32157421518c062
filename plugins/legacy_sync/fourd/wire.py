"""Tolerant reading of 4D REST responses.

Real 4D servers differ by version: ``__DATACLASS`` and
``__GlobalStamp`` are missing on old ones, ``__SENT`` may come after ``__ENTITIES``,
``__TIMESTAMP`` may be wrapped in extra quotes, entity sets hold ``{"__STAMP": 0}``
placeholders for deleted rows. Nothing here relies on key order or optional keys.

One bad value fails only its record, never its page: a lone UTF-16 surrogate escape
(``"\\ud800"``), a byte that is not UTF-8 or an integer wider than 64 bits would make orjson
reject the page or round the number to a float. Such a page is parsed again, exactly, by the
standard library; each value that cannot be kept faithfully is replaced (U+FFFD, or the
integer's decimal text) and its record says so under ``__value_issues``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import orjson

from legacy_sync.fourd.errors import FourDError


@dataclass(frozen=True)
class Page:
    """One page of a 4D collection request."""

    entities: list[dict[str, Any]]
    count: int | None
    """``__COUNT``: size of the whole filtered selection, when the server sent it."""
    global_stamp: int | None
    """The server's current ``__GlobalStamp`` (None or 0 when change tracking is off)."""
    reread: int = 0
    """Records of this request's selection that an earlier page already passed on and that
    were dropped from ``entities`` (reads by key re-read their boundary record to see its
    twin): ``count - reread`` is what this request's selection holds that is new."""


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_page(content: bytes, what: str) -> Page:
    """Parse a collection response body; raise a readable error when it is not one.

    orjson reads every normal page. The standard library reads it instead (several times
    slower) only when orjson refuses it, or when the body holds a run of 19 or more digits:
    such a number may not fit in 64 bits, and orjson would round it to a float. The digit
    test also fires on long digit runs inside strings; those pages just take the slow path.
    """
    exact = _may_hold_wide_integers(content)
    if not exact:
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            exact = True
    if exact:
        body, bad_bytes = _loads_exactly(content, what)
    if isinstance(body, list):  # $asArray=true form
        entities = [e for e in body if isinstance(e, dict)]
        if exact:
            _repair_all(entities, bad_bytes)
        return Page(entities=entities, count=None, global_stamp=None)
    if not isinstance(body, dict) or ("__ENTITIES" not in body and "__COUNT" not in body):
        keys = list(body)[:8] if isinstance(body, dict) else type(body).__name__
        raise FourDError(f"{what}: 4D answered without __ENTITIES (keys: {keys})")
    entities = [
        e
        for e in (body.get("__ENTITIES") or [])
        # Deleted rows inside an entity set are bare {"__STAMP": 0} placeholders.
        if isinstance(e, dict) and not (e.get("__STAMP") == 0 and len(e) <= 2)
    ]
    if exact:
        _repair_all(entities, bad_bytes)
    return Page(
        entities=entities,
        count=_int_or_none(body.get("__COUNT")),
        global_stamp=_int_or_none(body.get("__GlobalStamp")),
    )


# -- the exact slow path -------------------------------------------------------------------
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_WIDE_DIGIT_RUN = b"0" * 19  # int64 holds every 18-digit number and no 20-digit one
_DIGIT_RUN = re.compile(rb"[0-9]{19}")


def _may_hold_wide_integers(content: bytes) -> bool:
    """Whether ``content`` has a run of 19+ digits, like ``re.search(rb"[0-9]{19}")`` but at a
    tenth of its cost (a regex takes longer than orjson's whole parse).

    A run of 19 digits covers four consecutive multiples of 4, so every 4th byte shows it as
    four digits in a row: that quarter of the bytes is scanned in C (translate, find), and
    only the few spots found are checked in full. Past 8 false spots (long floats), the
    whole body is scanned the same way.
    """
    sample = content[::4].translate(_DIGITS_AS_ZERO)
    spot = sample.find(b"0000")
    for _ in range(8):
        if spot < 0:
            return False
        if _DIGIT_RUN.search(content, max(0, 4 * spot - 18), 4 * spot + 31):
            return True
        spot = sample.find(b"0000", spot + 1)
    return spot >= 0 and _WIDE_DIGIT_RUN in content.translate(_DIGITS_AS_ZERO)


class _WideInteger(str):
    """The decimal text of a JSON integer outside int64, as the parser saw it."""


def _exact_int(text: str) -> int | str:
    if len(text) < 19:  # at most 18 digits: always fits
        return int(text)
    if len(text) <= 20:
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    return _WideInteger(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _loads_exactly(content: bytes, what: str) -> tuple[Any, bool]:
    """(body, whether it held bytes that are not UTF-8) by the standard library's parser,
    which keeps lone surrogates and hands over the text of every integer."""
    try:
        text, bad_bytes = content.decode("utf-8"), False
    except UnicodeDecodeError:
        # Each bad byte becomes a lone surrogate U+DC80..U+DCFF, repaired and reported below.
        text, bad_bytes = content.decode("utf-8", "surrogateescape"), True
    try:
        return json.loads(text, parse_int=_exact_int, parse_constant=_no_constant), bad_bytes
    except (ValueError, RecursionError) as exc:
        raise FourDError(
            f"{what}: 4D sent a body that is not JSON ({exc}); first bytes: {content[:120]!r}", retryable=True
        ) from exc


_SURROGATE = re.compile("[\ud800-\udfff]")


def _repair_all(entities: list[dict[str, Any]], bad_bytes: bool) -> None:
    for entity in entities:
        issues: list[str] = []
        repaired = {}
        for name, value in entity.items():
            name = _repair_text(name, "an attribute name", issues, bad_bytes)
            repaired[name] = _repair(value, name, issues, bad_bytes)
        if issues:
            entity.clear()
            entity.update(repaired)
            entity["__value_issues"] = issues


def _repair(value: Any, path: str, issues: list[str], bad_bytes: bool) -> Any:
    """``value`` with what JSON cannot carry faithfully replaced; each replacement noted."""
    if isinstance(value, str):
        if type(value) is _WideInteger:
            issues.append(f"{path} holds an integer wider than 64 bits ({value})")
            return str(value)
        return _repair_text(value, path, issues, bad_bytes)
    if isinstance(value, dict):
        repaired = {}
        for name, inner in value.items():
            name = _repair_text(name, f"an attribute name in {path}", issues, bad_bytes)
            repaired[name] = _repair(inner, f"{path}.{name}", issues, bad_bytes)
        return repaired
    if isinstance(value, list):
        return [_repair(v, f"{path}[{i}]", issues, bad_bytes) for i, v in enumerate(value)]
    return value


def _repair_text(text: str, path: str, issues: list[str], bad_bytes: bool) -> str:
    if text.isascii() or not _SURROGATE.search(text):
        return text
    lone: list[int] = []
    undecodable: list[int] = []
    for position, char in enumerate(text, 1):
        if "\ud800" <= char <= "\udfff":
            # surrogateescape puts byte 0xNN at U+DCNN; a JSON escape can land there too,
            # so the range says "bad byte" only when the body had bad bytes.
            (undecodable if bad_bytes and char >= "\udc80" else lone).append(position)
    if lone:
        issues.append(f"{path} holds an invalid character (a lone UTF-16 surrogate) at {_positions(lone)}")
    if undecodable:
        codes = sorted({f"0x{ord(text[p - 1]) - 0xDC00:02X}" for p in undecodable})
        shown = ", ".join(codes[:5])
        issues.append(f"{path} holds bytes that are not UTF-8 ({shown}) at {_positions(undecodable)}")
    return _SURROGATE.sub("\ufffd", text)


def _positions(positions: list[int]) -> str:
    """1-based character positions, as a person counts them."""
    if len(positions) == 1:
        return f"position {positions[0]}"
    more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
    return "positions " + ", ".join(str(p) for p in positions[:5]) + more


def entity_key(entity: dict[str, Any], key_attribute: str) -> Any:
    """The primary-key value of an entity: the key attribute, else ``__KEY`` (always a string)."""
    value = entity.get(key_attribute)
    if value is None:
        value = entity.get("__KEY")
        if isinstance(value, dict):  # $asArray form: {"ID": 1, "__STAMP": 3}
            value = value.get(key_attribute)
    return value


def clean_timestamp(value: Any) -> Any:
    """``"\\"2017-03-06T14:47:38.001Z\\""`` (4D Mobile era) -> ``"2017-03-06T14:47:38.001Z"``."""
    if isinstance(value, str):
        return value.strip().strip('"').strip("!")
    return value


def params_json(values: list[Any]) -> str:
    """Encode ``$params`` as 4D wants it: a JSON array, quotes inside strings as ``\\u0027``/``\\u0022``.

    Values reach 4D only as placeholders, never spliced into ``$filter``, so no value can
    change the query.
    """
    return "'[" + ",".join(_param_value(v) for v in values) + "]'"


def encoded_length(value: Any) -> int:
    """At most how many URL characters ``value`` takes inside a percent-encoded ``$params``."""
    return len(quote_plus(_param_value(value), safe=""))


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple):  # `key in :1` takes a collection: [[1,2,3]]
        return "[" + ",".join(_param_value(v) for v in value) + "]"
    if isinstance(value, str):
        out = []
        for ch in value:
            if ch in "\"'\\" or ord(ch) < 0x20:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if value is None:
        raise ValueError("4D placeholders cannot carry null; write `attr = null` in the filter instead")
    return orjson.dumps(value).decode()
