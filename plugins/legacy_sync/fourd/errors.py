"""4D REST errors, classified as retryable or fatal.

4D answers errors with ``{"__ERROR": [{"message", "componentSignature", "errCode"}]}``. The HTTP
status alone does not say whether trying again can help: a 500 can be a passing server fault
or a query 4D will never accept. The error codes decide (``FATAL_CODES``).
"""

from __future__ import annotations

import httpx
import orjson

# Codes that describe the request itself (unknown dataclass/attribute, bad query, bad URL):
# repeating the request gives the same answer. 1200 "cannot complete the query" is left out:
# servers also answer it under load, so it is treated as transient.
FATAL_CODES = frozenset(
    {1003, 1112, 1162, 1201, 1203, 1204, 1279, 1280, 1500, 1542} | set(range(1800, 1830))
) - {1802, 1823}
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class FourDError(Exception):
    """A request 4D refused, with the 4D error codes and messages, ready for a person to read."""

    def __init__(
        self, message: str, *, status: int | None = None, codes: tuple[int, ...] = (), retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes
        self.retryable = retryable


class LicenceExhaustedError(FourDError):
    """HTTP 402: every 4D client licence is taken by other sessions."""


class LoginRefusedError(FourDError):
    """4D answered the login but did not accept the user and password."""


class PagingError(FourDError):
    """4D's answers break a guarantee that reading by key relies on: key order, unique keys,
    the key filter.

    Never retryable: asking again gets the same answer, and reading on would land part of a
    table without any error. The message says what was seen, what it means and what to do.
    """


def parse_errors(response: httpx.Response) -> list[dict[str, object]]:
    """The ``__ERROR`` entries of a response, or an empty list if it has none or is not JSON."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []
    if isinstance(body, dict) and isinstance(body.get("__ERROR"), list):
        return [e for e in body["__ERROR"] if isinstance(e, dict)]
    return []


def _headline(message: str) -> str:
    """The line of a 4D error message that says what went wrong.

    Older servers wrap it:
    ``"Error code: 1802\nEntitySet ... cannot be found\ncomponent: 'dbmg'\ntask 22..."``.
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(("Error code:", "component:", "task ")):
            return line
    return lines[0] if lines else message


def error_from_response(response: httpx.Response, what: str) -> FourDError:
    """Turn a non-2xx 4D response into a classified, readable :class:`FourDError`."""
    errors = parse_errors(response)
    codes = tuple(code for e in errors if isinstance(code := e.get("errCode"), int))
    messages = [_headline(str(e.get("message", ""))) for e in errors if e.get("message")]
    status = response.status_code
    detail = "; ".join(f"{m} (4D error {c})" for m, c in zip(messages, codes, strict=False)) or (
        response.text[:200].strip() or response.reason_phrase
    )
    if status == 402:
        return LicenceExhaustedError(
            f"{what}: the 4D server has no client licence left (HTTP 402: {detail}). Other sessions "
            "hold them until idle for their timeout (60+ minutes). Free licences on the 4D server "
            "or hold fewer sessions at once, then retry.",
            status=status,
            codes=codes,
            retryable=True,
        )
    retryable = status in RETRYABLE_STATUS and not (set(codes) & FATAL_CODES)
    return FourDError(f"{what}: HTTP {status}: {detail}", status=status, codes=codes, retryable=retryable)
