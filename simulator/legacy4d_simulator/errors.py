"""4D REST ``__ERROR`` bodies and the HTTP status each error is served with (protocol doc section 5).

Status choices where 4D's docs are loose (marked [verify] in the protocol doc): query, attribute and
parameter errors are served as 500 (the REST status table lists only 200/401/402/404/500), unknown
dataclasses and entity sets as 404.
"""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """An error answered as ``{"__ERROR": [...]}`` with an HTTP status."""

    def __init__(self, status: int, *errors: tuple[int, str]) -> None:
        super().__init__(errors[0][1] if errors else "error")
        self.status = status
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {
            "__ERROR": [
                {"message": msg, "componentSignature": "dbmg", "errCode": code} for code, msg in self.errors
            ]
        }


def dataclass_not_found(name: str) -> RestError:
    """1800, 404: unknown or non-exposed dataclass (also any unknown path segment)."""
    return RestError(
        404,
        (
            1800,
            f'Error code: 1800\nThe "{name}" datastore class cannot be found\n'
            "component: 'dbmg'\ntask 12, name: 'HTTP connection handler'\n",
        ),
    )


def attribute_not_found(attr: str, table: str, build: int = 1804) -> RestError:
    """1500 + 1804 (attribute list) / 1201 (query), 500."""
    second = (
        "Cannot completely build a list of attributes with"
        if build == 1804
        else "Cannot analyse the query string with"
    )
    return RestError(
        500,
        (1500, f'The "{attr}" attribute cannot be found in The "{table}" datastore class'),
        (build, f'{second} "{attr}"'),
    )


def query_error(message: str, code: int = 1201) -> RestError:
    """1201 (cannot analyse query) or another query-engine code, 500."""
    return RestError(500, (code, message), *(((1201, "Cannot analyse the query"),) if code != 1201 else ()))


def placeholder_missing(n: int) -> RestError:
    """1279 + 1201 as seen in Wakanda/4D Mobile reports, 500."""
    return RestError(
        500, (1279, f"The placeholder :{n} is missing or null"), (1201, "Cannot analyse the query")
    )


def entityset_not_found(set_id: str) -> RestError:
    """1802, 404."""
    return RestError(
        404,
        (
            1802,
            f'Error code: 1802\nEntitySet  "{set_id}" cannot be found\n'
            "component: 'dbmg'\ntask 22, name: 'HTTP connection handler'\n",
        ),
    )


def max_sessions() -> RestError:
    """1823, 402: the licence pool is exhausted."""
    return RestError(402, (1823, "Maximum number of sessions has been reached"))


def unauthorized() -> RestError:
    """401 'Permissions error' (access restricted and no authenticated session)."""
    return RestError(401, (1561, "Permissions error: no permission to execute this request"))


def entity_not_found(table: str, key: str) -> RestError:
    """1542 key not found, 404."""
    return RestError(404, (1542, f'Entity with key "{key}" not found in "{table}"'))
