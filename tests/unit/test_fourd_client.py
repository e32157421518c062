"""The 4D client against scripted HTTP answers (httpx.MockTransport: the transport is faked,
our code is not). Every branch of auth, retry classification and paging is driven here; the
same behaviour against the simulator is in tests/integration."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import orjson
import pytest

from legacy_sync.fourd import FourDClient, FourDError, FourDSettings, LicenceExhaustedError
from legacy_sync.fourd.auth import MemorySessionStore
from legacy_sync.fourd.client import Filter
from legacy_sync.fourd.wire import params_json

FAST = {"backoff_max_seconds": 0.01, "licence_backoff_seconds": 0.01, "licence_wait_seconds": 1.0}


def settings(**overrides: object) -> FourDSettings:
    values = {"base_url": "http://4d.test", "username": "sync", "password": "s3cret", **FAST, **overrides}
    return FourDSettings(**values)  # type: ignore[arg-type]


class FakeFourD:
    """A scripted 4D: login sets a cookie; handlers answer data requests."""

    def __init__(self, data: Callable[[httpx.Request], httpx.Response]) -> None:
        self.data = data
        self.logins = 0
        self.requests: list[httpx.Request] = []
        self.valid_cookies: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/rest/$directory/login":
            assert request.method == "POST"
            if request.headers.get("password-4D") != "s3cret":
                return httpx.Response(200, json={"result": False})
            self.logins += 1
            cookie = f"S{self.logins}"
            self.valid_cookies.add(cookie)
            return httpx.Response(
                200, json={"result": True}, headers={"Set-Cookie": f"4DSID_ERP={cookie}; Path=/"}
            )
        cookie = (request.headers.get("Cookie") or "").removeprefix("4DSID_ERP=")
        if cookie not in self.valid_cookies:
            return httpx.Response(401, json={"__ERROR": [{"message": "Permissions error", "errCode": 1822}]})
        return self.data(request)


def params_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def envelope(entities: list[dict[str, object]], count: int | None, **extra: object) -> httpx.Response:
    body: dict[str, object] = {
        "__entityModel": "Products",
        "__ENTITIES": entities,
        "__SENT": len(entities),
        **extra,
    }
    if count is not None:
        body["__COUNT"] = count
    return httpx.Response(200, content=orjson.dumps(body))


def keyset_server(keys: list[int], cap: int | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """Serves ``keys`` honouring ``ProductID>:1`` + ``$top``, optionally capping pages."""

    def handler(request: httpx.Request) -> httpx.Response:
        q = params_of(request)
        assert q.get("$orderby", '"ProductID asc"') == '"ProductID asc"'
        after = orjson.loads(q["$params"].strip("'"))[0] if "$params" in q else None
        remaining = [k for k in keys if after is None or k > after]
        top = int(q["$top"])
        page = remaining[: min(top, cap or top)]
        return envelope([{"__KEY": str(k), "__STAMP": 1, "ProductID": k} for k in page], len(remaining))

    return handler


def test_logs_in_once_and_shares_the_session_between_clients() -> None:
    fake = FakeFourD(keyset_server(list(range(1, 6))))
    store = MemorySessionStore()
    for _ in range(3):  # three tasks, one after another
        with FourDClient(settings(), store, httpx.MockTransport(fake)) as client:
            list(client.iter_by_key("Products", "ProductID", page_size=2))
    assert fake.logins == 1
    login = fake.requests[0]
    assert login.headers["username-4D"] == "sync" and login.headers["session-4D-length"] == "120"


def test_logs_in_again_when_4d_refuses_the_session() -> None:
    fake = FakeFourD(keyset_server([1, 2, 3]))
    store = MemorySessionStore()
    with FourDClient(settings(), store, httpx.MockTransport(fake)) as client:
        client.page("Products", top=1)
        fake.valid_cookies.clear()  # the session expired on the server
        page = client.page("Products", top=1)
    assert page.entities and fake.logins == 2
    assert store.load() == ("4DSID_ERP", "S2")


def test_wrong_password_fails_with_an_actionable_message() -> None:
    fake = FakeFourD(keyset_server([1]))
    with (
        FourDClient(settings(password="nope"), None, httpx.MockTransport(fake)) as client,
        pytest.raises(FourDError, match="login refused for user 'sync'"),
    ):
        client.page("Products")


def test_keyset_paging_survives_a_server_page_cap() -> None:
    keys = list(range(1, 26))
    fake = FakeFourD(keyset_server(keys, cap=7))  # asks for 10, gets 7: a short page is not the end
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        got = [
            e["ProductID"]
            for p in client.iter_by_key("Products", "ProductID", page_size=10)
            for e in p.entities
        ]
    assert got == keys


def test_keyset_paging_without_count_stops_on_an_empty_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        response = keyset_server([1, 2, 3, 4, 5])(request)
        body = orjson.loads(response.content)
        del body["__COUNT"]  # an old server that omits it
        return httpx.Response(200, content=orjson.dumps(body))

    fake = FakeFourD(handler)
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        got = [
            e["ProductID"]
            for p in client.iter_by_key("Products", "ProductID", page_size=2)
            for e in p.entities
        ]
    assert got == [1, 2, 3, 4, 5]
    assert len([r for r in fake.requests if r.url.path == "/rest/Products"]) == 4


def test_a_server_ignoring_the_key_filter_is_detected() -> None:
    fake = FakeFourD(lambda r: envelope([{"__KEY": "1", "ProductID": 1}, {"__KEY": "2", "ProductID": 2}], 99))
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(FourDError, match="ignored the key filter"),
    ):
        list(client.iter_by_key("Products", "ProductID", page_size=2))


def test_transient_errors_are_retried_honouring_retry_after() -> None:
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "0"}, text="busy"),
            httpx.Response(500, json={"__ERROR": [{"message": "Internal", "errCode": 1}]}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or envelope([{"__KEY": "1", "ProductID": 1}], 1)

    fake = FakeFourD(handler)
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        assert client.page("Products").entities[0]["ProductID"] == 1
    assert len([r for r in fake.requests if r.url.path == "/rest/Products"]) == 3


def test_dropped_connections_are_retried() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return envelope([{"__KEY": "1", "ProductID": 1}], 1)

    with FourDClient(settings(), None, httpx.MockTransport(FakeFourD(handler))) as client:
        assert client.page("Products").count == 1
    assert calls["n"] == 3


def test_query_errors_are_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            500,
            json={
                "__ERROR": [
                    {
                        "message": "Error code: 1279\nplaceholder :1 is missing or null\ntask 22",
                        "errCode": 1279,
                    },
                    {"message": "Cannot analyse query", "errCode": 1201},
                ]
            },
        )

    fake = FakeFourD(handler)
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(FourDError) as caught,
    ):
        client.page("Products")
    assert caught.value.codes == (1279, 1201) and not caught.value.retryable
    assert "placeholder :1 is missing or null (4D error 1279)" in str(caught.value)
    assert len([r for r in fake.requests if r.url.path == "/rest/Products"]) == 1


def test_licence_exhaustion_waits_then_recovers() -> None:
    answers = iter(
        [
            httpx.Response(
                402,
                json={
                    "__ERROR": [{"message": "Maximum number of sessions has been reached", "errCode": 1823}]
                },
            )
        ]
        * 3
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or envelope([], 0)

    with FourDClient(settings(), None, httpx.MockTransport(FakeFourD(handler))) as client:
        assert client.page("Products").entities == []


def test_licence_exhaustion_that_lasts_fails_with_advice() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            402, json={"__ERROR": [{"message": "Maximum number of sessions", "errCode": 1823}]}
        )

    with (
        FourDClient(
            settings(licence_wait_seconds=0.05), None, httpx.MockTransport(FakeFourD(handler))
        ) as client,
        pytest.raises(LicenceExhaustedError, match=r"no client licence left.*legacy_4d` pool"),
    ):
        client.page("Products")


def test_tolerates_legacy_envelopes_and_entity_set_placeholders() -> None:
    legacy = (
        b'{"__entityModel":"Products","__COUNT":2,"__ENTITIES":[{"__KEY":"1","__STAMP":0},'
        b'{"__KEY":"2","__TIMESTAMP":"\\"2017-03-06T14:47:38.001Z\\"","__STAMP":4,"ProductID":2}],"__SENT":2}'
    )
    fake = FakeFourD(lambda r: httpx.Response(200, content=legacy))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        page = client.page("Products")
    assert [e["__KEY"] for e in page.entities] == ["2"]  # the deleted placeholder is dropped
    assert page.global_stamp is None and page.count == 2


def test_values_reach_4d_only_as_placeholders() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(params_of(request))
        return envelope([], 0)

    where = Filter("SKU=:1", ("O'Reilly\" OR 1=1",)).and_("Price>:1", 10)
    with FourDClient(settings(), None, httpx.MockTransport(FakeFourD(handler))) as client:
        client.page("Products", where=where)
    assert seen[0]["$filter"] == '"SKU=:1 AND Price>:2"'
    assert unquote(seen[0]["$params"]) == "'[\"O\\u0027Reilly\\u0022 OR 1=1\",10]'"
    assert orjson.loads(params_json(["a'b"]).strip("'")) == ["a'b"]


def test_settings_never_show_the_password() -> None:
    assert "s3cret" not in repr(settings())
