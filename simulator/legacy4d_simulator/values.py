"""Stored value conventions and their 4D wire forms (protocol doc section 3.4).

Inside the simulator a date field holds a ``datetime.date``, ``None`` (a true NULL, served as
``null``) or :data:`BLANK_DATE` (4D's empty date, served as ``"0!0!0"``). Times are integer
milliseconds since midnight.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from typing import Any

import orjson


class _BlankDate:
    """4D's empty date ``!00-00-00!``: not NULL, but no date either."""

    _instance: _BlankDate | None = None

    def __new__(cls) -> _BlankDate:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "BLANK_DATE"

    def __bool__(self) -> bool:
        return False


BLANK_DATE: Any = _BlankDate()
EPOCH_DATE = dt.date(1970, 1, 1)


class WireValue:
    """A value served exactly as given, whatever the field's type: bad input for tests.

    Real legacy data holds what no type system would allow once it went through old imports
    (``"31!2!2020"`` in a date, ``"n/a"`` in a number); ``dataset.update(table, key,
    {"Price": WireValue("n/a")})`` makes the simulator send such a value. Queries, sorts and
    aggregates see such a value as NULL: the typed engine has nothing it could compare.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"WireValue({self.value!r})"


class RawJson(WireValue):
    """Literal JSON text put into the page verbatim: what no JSON encoder would write.

    Legacy servers send text that ``orjson`` refuses to encode: a lone UTF-16 surrogate escape
    (``RawJson('"Bad \\ud800 text"')``), an integer wider than 64 bits
    (``RawJson("123456789012345678901234567890")``), a ``\\u0000`` escape in ``__KEY`` or
    ``__TIMESTAMP``. The text goes out as an ``orjson.Fragment``. It must be one JSON value by the
    JSON grammar (checked here with the permissive standard library parser), so that the page
    stays valid JSON text around it.

    Raises:
        ValueError: ``text`` is not one JSON value.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        try:
            json.loads(text)
        except ValueError as exc:
            raise ValueError(f"RawJson needs one JSON value, got {text!r}") from exc
        super().__init__(orjson.Fragment(text.encode()))
        self.text = text

    def __repr__(self) -> str:
        return f"RawJson({self.text!r})"


def date_to_wire(value: Any) -> str | None:
    """Return the 4D wire form ``d!m!yyyy`` (no padding), ``"0!0!0"`` or None."""
    if value is None:
        return None
    if value is BLANK_DATE:
        return "0!0!0"
    return f"{value.day}!{value.month}!{value.year}"


def parse_date(text: str) -> Any:
    """Parse ``YYYY-MM-DD`` or 4D's ``d!m!yyyy``; ``0!0!0`` and ``""`` give :data:`BLANK_DATE`.

    Raises:
        ValueError: when ``text`` is neither form.
    """
    text = text.strip()
    if text in ("", "0!0!0", "00!00!0000", "0000-00-00"):
        return BLANK_DATE
    if "!" in text:
        d, m, y = (int(p) for p in text.split("!"))
        return dt.date(y, m, d)
    return dt.date.fromisoformat(text[:10])


def coerce_date(value: Any) -> Any:
    """Accept a date, an ISO/4D string, BLANK_DATE or None from the mutation API."""
    if value is None or value is BLANK_DATE or isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    return parse_date(str(value))


_ISO_DAYS: dict[Any, str] = {}
_ISO_PREFIX: dict[Any, str] = {}
"""``"YYYY-MM-DDT"`` of the dates :func:`iso_timestamp` met (same keys and bound as ``_ISO_DAYS``)."""
_HMS: list[str] = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
_MILLIS: tuple[str, ...] = tuple(f".{i:03d}Z" for i in range(1000))


def iso_timestamp(day: Any, ms: int | None) -> str:
    """``__TIMESTAMP`` for a stored record: its ModifiedDate plus ModifiedTime, UTC, ms precision."""
    if type(ms) is int and 0 <= ms < 86_400_000:  # the common case, by table lookups
        prefix = _ISO_PREFIX.get(day)
        if prefix is not None:
            s, milli = divmod(ms, 1000)
            return prefix + _HMS[s] + _MILLIS[milli]
    if not isinstance(day, dt.date):
        day = EPOCH_DATE
    iso = _ISO_DAYS.get(day)
    if iso is None:
        iso = day.isoformat()
        if len(_ISO_DAYS) < 100_000:
            _ISO_DAYS[day] = iso
            _ISO_PREFIX[day] = iso + "T"
    s, milli = divmod(int(ms or 0), 1000)
    if 0 <= s < 86_400:
        return f"{iso}T{_HMS[s]}.{milli:03d}Z"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{iso}T{h % 24:02d}:{m:02d}:{sec:02d}.{milli:03d}Z"


class Clock:
    """The simulated server machine's clock: real UTC time moved by an offset.

    4D stamps saves (``__TIMESTAMP``; the ERP's ``ModifiedDate``/``ModifiedTime``) and its HTTP
    ``Date`` header from the server machine's clock, which need not agree with the client's (skew,
    another day, a wrong year); moving it lets tests provoke those cases.
    """

    def __init__(self, offset_days: float = 0) -> None:
        self.offset = dt.timedelta(days=offset_days)

    def now(self) -> dt.datetime:
        """The server's current time (aware, UTC)."""
        return dt.datetime.now(dt.UTC) + self.offset

    def set(self, when: dt.datetime | dt.date | None = None, *, offset_days: float | None = None) -> None:
        """Move the clock to ``when`` (it keeps running from there; naive = UTC, a date = its
        midnight), or ``offset_days`` away from real time; neither: back to real time."""
        if when is not None:
            if not isinstance(when, dt.datetime):
                when = dt.datetime(when.year, when.month, when.day)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            self.offset = when - dt.datetime.now(dt.UTC)
        else:
            self.offset = dt.timedelta(days=offset_days or 0)

    def timestamp(self) -> str:
        """The current time as a 4D ``__TIMESTAMP`` string."""
        now = self.now()
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"

    def http_date(self) -> str:
        """The current time as an HTTP ``Date`` header value (RFC 9110 IMF-fixdate)."""
        return email.utils.format_datetime(self.now(), usegmt=True)
