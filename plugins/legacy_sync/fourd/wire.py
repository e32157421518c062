"""Tolerant reading of 4D REST responses.

Real 4D servers differ by version (docs/4d-rest-protocol.md §3): ``__DATACLASS`` and
``__GlobalStamp`` are missing on old ones, ``__SENT`` may come after ``__ENTITIES``,
``__TIMESTAMP`` may be wrapped in extra quotes, entity sets hold ``{"__STAMP": 0}``
placeholders for deleted rows. Nothing here relies on key order or optional keys.
"""

from __future__ import annotations

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
    """Parse a collection response body; raise a readable error when it is not one."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise FourDError(
            f"{what}: 4D sent a body that is not JSON ({exc}); first bytes: {content[:120]!r}", retryable=True
        ) from exc
    if isinstance(body, list):  # $asArray=true form
        return Page(entities=[e for e in body if isinstance(e, dict)], count=None, global_stamp=None)
    if not isinstance(body, dict) or ("__ENTITIES" not in body and "__COUNT" not in body):
        keys = list(body)[:8] if isinstance(body, dict) else type(body).__name__
        raise FourDError(f"{what}: 4D answered without __ENTITIES (keys: {keys})")
    entities = [
        e
        for e in (body.get("__ENTITIES") or [])
        # Deleted rows inside an entity set are bare {"__STAMP": 0} placeholders.
        if isinstance(e, dict) and not (e.get("__STAMP") == 0 and len(e) <= 2)
    ]
    return Page(
        entities=entities,
        count=_int_or_none(body.get("__COUNT")),
        global_stamp=_int_or_none(body.get("__GlobalStamp")),
    )


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
