"""The 4D client against scripted HTTP answers (httpx.MockTransport: the transport is faked,
our code is not). Every branch of auth, retry classification and paging is driven here; the
same behaviour against the simulator is in tests/integration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import orjson
import pytest

from legacy_sync.fourd import FourDClient, FourDError, FourDSettings, LicenceExhaustedError, PagingError
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


def table_server(
    rows: list[dict[str, Any]],
    key: str = "ProductID",
    *,
    cap: int | None = None,
    sort: bool = True,
    key_type: str = "long",
) -> Callable[[httpx.Request], httpx.Response]:
    """A 4D dataclass ``Products`` holding ``rows``: answers ``key>:1``, ``key>=:1`` and
    ``key in :1`` filters, ``$orderby`` on the key (``sort=False``: a server that drops it and
    answers in storage order) and ``$top``, optionally capping pages. Text compares as 4D
    compares it, without regard to case."""

    def comparable(value: Any) -> Any:
        return value.casefold() if isinstance(value, str) else value

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/rest/$catalog/Products":
            return httpx.Response(
                200, json={"name": "Products", "attributes": [{"name": key, "type": key_type}]}
            )
        q = params_of(request)
        params = orjson.loads(q["$params"].strip("'")) if "$params" in q else []
        expression = q.get("$filter", "").strip('"')
        selected = rows
        if expression == f"{key}>:1":
            selected = [r for r in rows if comparable(r[key]) > comparable(params[0])]
        elif expression == f"{key}>=:1":
            selected = [r for r in rows if comparable(r[key]) >= comparable(params[0])]
        elif expression == f"{key} in :1":
            wanted = {comparable(v) for v in params[0]}
            selected = [r for r in rows if comparable(r[key]) in wanted]
        else:
            assert not expression, expression
        if sort and "$orderby" in q:
            assert q["$orderby"] == f'"{key} asc"'
            selected = sorted(selected, key=lambda r: comparable(r[key]))  # stable: twins keep order
        top = int(q.get("$top", 100))
        page = selected[: min(top, cap or top)]
        return envelope([{"__KEY": str(r[key]), "__STAMP": 1, **r} for r in page], len(selected))

    return handler


def keyset_server(keys: list[int], cap: int | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """Serves ``keys`` as ``Products`` records, optionally capping pages."""
    return table_server([{"ProductID": k} for k in keys], cap=cap)


def data_requests(fake: FakeFourD) -> list[dict[str, str]]:
    return [params_of(r) for r in fake.requests if r.url.path == "/rest/Products"]


def read_all(client: FourDClient, **kwargs: Any) -> list[Any]:
    return [e["ProductID"] for p in client.iter_by_key("Products", "ProductID", **kwargs) for e in p.entities]


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
        pytest.raises(
            PagingError, match=r"ignored the key filter \(asked ProductID >= 2, got ProductID 1\)"
        ) as caught,
    ):
        list(client.iter_by_key("Products", "ProductID", page_size=2))
    assert not caught.value.retryable


def test_keyset_paging_rereads_the_boundary_record_and_yields_each_record_once() -> None:
    fake = FakeFourD(keyset_server(list(range(1, 26))))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        pages = list(client.iter_by_key("Products", "ProductID", page_size=10))
    assert [e["ProductID"] for p in pages for e in p.entities] == list(range(1, 26))
    sent = data_requests(fake)
    assert [q.get("$params") for q in sent] == [None, "'[10]'", "'[20]'"]
    assert {q.get("$filter") for q in sent[1:]} == {'"ProductID>=:1"'}
    assert [q["$top"] for q in sent] == ["10", "11", "11"]  # one record more: the boundary
    # Completeness, page by page: count - reread is what was left, this page included.
    assert [(p.count, p.reread, len(p.entities)) for p in pages] == [(25, 0, 10), (16, 1, 10), (6, 1, 5)]


def test_a_twin_at_a_page_boundary_fails_with_the_duplicate_key() -> None:
    # Two 4D records share ProductID 3; `ProductID > 3` after the first page would skip one.
    rows = [{"ProductID": k, "Name": n} for k, n in [(1, "a"), (2, "b"), (3, "c"), (3, "twin"), (4, "d")]]
    fake = FakeFourD(table_server(rows))
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(PagingError) as caught,
    ):
        list(client.iter_by_key("Products", "ProductID", page_size=3))
    message = str(caught.value)
    assert "two records share the primary key ProductID = 3" in message
    assert "duplicate primary keys in Products" in message and "make ProductID unique" in message
    assert not caught.value.retryable


def test_a_twin_inside_a_page_fails_too() -> None:
    fake = FakeFourD(table_server([{"ProductID": k} for k in (1, 2, 2, 3)]))
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(PagingError, match="share the primary key ProductID = 2"),
    ):
        list(client.iter_by_key("Products", "ProductID", page_size=10))


@pytest.mark.parametrize(
    "storage_order",
    [list(range(30, 0, -1)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 25, 13, 14, 15, 16, 17, 18, 19, 20]],
    ids=["reversed", "one-record-out-of-place"],
)
def test_a_server_or_proxy_ignoring_orderby_is_detected(storage_order: list[int]) -> None:
    fake = FakeFourD(table_server([{"ProductID": k} for k in storage_order], sort=False))
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(PagingError) as caught,
    ):
        read_all(client, page_size=10)
    message = str(caught.value)
    assert "out of key order" in message and 'ignores $orderby="ProductID asc"' in message
    assert "silently skips records" in message and "reach 4D unchanged" in message


def test_keys_compare_as_numbers_even_when_only_key_arrives() -> None:
    # Without the key attribute in $attributes only __KEY (text) tells the order: "10" > "9".
    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(keyset_server(list(range(1, 13)))(request).content)
        for entity in body["__ENTITIES"]:
            del entity["ProductID"]
        return httpx.Response(200, content=orjson.dumps(body))

    fake = FakeFourD(handler)
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        pages = list(client.iter_by_key("Products", "ProductID", attributes=("Name",), page_size=5))
    assert [e["__KEY"] for p in pages for e in p.entities] == [str(k) for k in range(1, 13)]
    assert [q.get("$params") for q in data_requests(fake)] == [None, "'[5]'", "'[10]'"]  # numbers


def test_text_keys_compare_as_4d_compares_text() -> None:
    # 4D orders and filters text without regard to case: "apple" < "Banana" < "cherry".
    rows = [{"Code": c} for c in ("apple", "Banana", "cherry", "Date", "elder")]
    fake = FakeFourD(table_server(rows, key="Code", key_type="string"))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        got = [e["Code"] for p in client.iter_by_key("Products", "Code", page_size=2) for e in p.entities]
        assert got == ["apple", "Banana", "cherry", "Date", "elder"]
        # ...so "ABC" and "abc" are one key to a filter: twins.
        fake.data = table_server([{"Code": c} for c in ("abc", "ABC", "b")], key="Code", key_type="string")
        with pytest.raises(PagingError, match="Code = 'abc' and 'ABC', which 4D compares as equal"):
            list(client.iter_by_key("Products", "Code", page_size=5))


def test_a_server_ignoring_the_filter_on_text_keys_is_caught_too() -> None:
    # Punctuation sorts by the server's collation, so this order is not checked; the boundary
    # record served again at the end of the page still shows the filter was dropped.
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        assert len(calls) < 20, "paging never ends"
        if request.url.path.startswith("/rest/$catalog"):
            return httpx.Response(404)
        return envelope([{"__KEY": c, "Code": c} for c in ("a-1", "a_2", "a.3")], 99)

    with (
        FourDClient(settings(), None, httpx.MockTransport(FakeFourD(handler))) as client,
        pytest.raises(PagingError, match=r"ignored the key filter \(asked Code >= 'a.3', got Code 'a-1'\)"),
    ):
        list(client.iter_by_key("Products", "Code", page_size=3))


def test_paging_resumes_after_a_key() -> None:
    fake = FakeFourD(keyset_server(list(range(1, 8))))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        assert read_all(client, page_size=3, after=3) == [4, 5, 6, 7]


def test_a_server_capping_pages_at_one_record_fails_instead_of_looping() -> None:
    fake = FakeFourD(keyset_server(list(range(1, 6)), cap=1))
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(PagingError, match="caps pages at one record"),
    ):
        read_all(client, page_size=3)
    assert len(data_requests(fake)) == 2


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
        pytest.raises(LicenceExhaustedError, match=r"no client licence left.*hold fewer sessions"),
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


# -- reading by key -----------------------------------------------------------------------------
def asked_keys(fake: FakeFourD) -> list[list[Any]]:
    return [orjson.loads(q["$params"].strip("'"))[0] for q in data_requests(fake)]


def test_get_records_asks_in_batches_with_in_and_params() -> None:
    existing = [k for k in range(1, 3001) if k % 7]  # every 7th record is gone
    fake = FakeFourD(table_server([{"ProductID": k} for k in existing]))
    wanted = [str(k) for k in range(2500, 0, -1)] + [99999, 42]  # landed legacy_ids are text
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        pages = list(client.get_records("Products", "ProductID", wanted, attributes=("ProductID",)))
    got = [e["ProductID"] for p in pages for e in p.entities]
    assert got == [k for k in range(1, 2501) if k % 7]  # sorted, once each; gone ones absent
    sent = data_requests(fake)
    assert {q["$filter"] for q in sent} == {'"ProductID in :1"'}
    assert {q["$orderby"] for q in sent} == {'"ProductID asc"'}
    batches = asked_keys(fake)
    assert [k for b in batches for k in b] == [*range(1, 2501), 99999]  # numbers, as 4D types them
    assert all(len(b) <= 500 for b in batches) and len(batches) == 6
    assert max(len(str(r.url)) for r in fake.requests) < 8192
    assert len([r for r in fake.requests if r.url.path == "/rest/$catalog/Products"]) == 1


def test_get_records_keeps_long_keys_under_the_url_limit() -> None:
    codes = [f"PART-{i:05d}-{'x' * 60}" for i in range(400)]
    fake = FakeFourD(table_server([{"Code": c} for c in codes], key="Code", key_type="string"))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        got = [e["Code"] for p in client.get_records("Products", "Code", codes) for e in p.entities]
    assert got == codes
    assert len(asked_keys(fake)) > 1 and max(len(str(r.url)) for r in fake.requests) < 8192


def test_get_records_asks_again_when_the_server_cuts_a_batch_short() -> None:
    fake = FakeFourD(table_server([{"ProductID": k} for k in range(1, 21)], cap=4))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        pages = list(client.get_records("Products", "ProductID", [1, 2, 3, 5, 8, 13, 21, 34]))
    assert [e["ProductID"] for p in pages for e in p.entities] == [1, 2, 3, 5, 8, 13]
    # The rest, plus the last record returned (5): its twin could hide past the cut.
    assert asked_keys(fake) == [[1, 2, 3, 5, 8, 13, 21, 34], [5, 8, 13, 21, 34]]
    assert [p.reread for p in pages] == [0, 1]


@pytest.mark.parametrize(
    ("rows", "cap", "match"),
    [
        ([1, 2, 2, 3], None, "two records share the primary key ProductID = 2"),
        ([1, 2, 3, 3, 4], 3, "two records share the primary key ProductID = 3"),  # twin past a cut
    ],
    ids=["twin", "twin-past-a-cut"],
)
def test_get_records_fails_on_a_twin(rows: list[int], cap: int | None, match: str) -> None:
    fake = FakeFourD(table_server([{"ProductID": k} for k in rows], cap=cap))
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(PagingError, match=match),
    ):
        list(client.get_records("Products", "ProductID", [1, 2, 3, 4]))


def test_get_records_fails_when_4d_returns_keys_not_asked_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/rest/$catalog"):
            return table_server([])(request)
        return envelope([{"__KEY": str(k), "ProductID": k} for k in (1, 2, 3)], 3)  # filter dropped

    with (
        FourDClient(settings(), None, httpx.MockTransport(FakeFourD(handler))) as client,
        pytest.raises(PagingError) as caught,
    ):
        list(client.get_records("Products", "ProductID", [2, 3]))
    assert str(caught.value).startswith(
        'read 4D Products by key: 4D returned ProductID 1, which was not asked for ("ProductID in :1" '
        "with 2 key(s), 2 to 3). The 4D server or a proxy in front of it ignores $filter or $params"
    )


def test_get_records_refuses_text_for_a_numeric_key() -> None:
    fake = FakeFourD(table_server([{"ProductID": 1}]))
    with (
        FourDClient(settings(), None, httpx.MockTransport(fake)) as client,
        pytest.raises(ValueError, match="'A-1' is not a number, but 4D's ProductID is numeric"),
    ):
        list(client.get_records("Products", "ProductID", [1, "A-1"]))
    assert data_requests(fake) == []


def test_collections_of_values_reach_4d_as_placeholders_too() -> None:
    encoded = params_json([["O'Reilly", 'say "hi"', 3]])
    assert encoded == '\'[["O\\u0027Reilly","say \\u0022hi\\u0022",3]]\''
    assert orjson.loads(encoded.strip("'")) == [["O'Reilly", 'say "hi"', 3]]


# -- one bad value fails only its record --------------------------------------------------------
def raw_page(*entities: bytes) -> bytes:
    return b'{"__entityModel":"Products","__COUNT":%d,"__ENTITIES":[%s]}' % (
        len(entities),
        b",".join(entities),
    )


def page_of(body: bytes) -> list[dict[str, Any]]:
    fake = FakeFourD(lambda r: httpx.Response(200, content=body))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        return client.page("Products").entities


def test_a_lone_surrogate_fails_only_its_record() -> None:
    entities = page_of(
        raw_page(
            b'{"__KEY":"1","ProductID":1,"Description":"ok \\ud83d\\ude00"}',  # a proper pair
            b'{"__KEY":"2","ProductID":2,"Description":"abc\\ud800def","SKU":"\\udc00",'
            b'"Extra":{"note":"ok","n\\udfff":[1,"\\ud801\\ud801"]}}',
            b'{"__KEY":"3","ProductID":3,"Description":"fine","Price":12.5}',
        )
    )
    assert entities[0] == {"__KEY": "1", "ProductID": 1, "Description": "ok \U0001f600"}
    assert entities[1]["Description"] == "abc\ufffddef" and entities[1]["SKU"] == "\ufffd"
    assert entities[1]["__value_issues"] == [
        "Description holds an invalid character (a lone UTF-16 surrogate) at position 4",
        "SKU holds an invalid character (a lone UTF-16 surrogate) at position 1",
        "an attribute name in Extra holds an invalid character (a lone UTF-16 surrogate) at position 2",
        "Extra.n\ufffd[1] holds an invalid character (a lone UTF-16 surrogate) at positions 1, 2",
    ]
    assert entities[1]["Extra"] == {"note": "ok", "n\ufffd": [1, "\ufffd\ufffd"]}
    assert entities[2] == {"__KEY": "3", "ProductID": 3, "Description": "fine", "Price": 12.5}
    orjson.dumps(entities)  # what landing does next


def test_an_integer_wider_than_64_bits_is_kept_exact_as_text() -> None:
    entities = page_of(
        raw_page(
            b'{"__KEY":"1","Price":123456789012345678901234567890,"Stock":9223372036854775808,'
            b'"Extra":{"serials":[1,-9223372036854775809]}}',
            b'{"__KEY":"2","Price":9223372036854775807,"Stock":-9223372036854775808,"Note":"1234567890123456789012"}',
        )
    )
    assert entities[0]["Price"] == "123456789012345678901234567890"
    assert entities[0]["Stock"] == "9223372036854775808"
    assert entities[0]["Extra"] == {"serials": [1, "-9223372036854775809"]}
    assert entities[0]["__value_issues"] == [
        "Price holds an integer wider than 64 bits (123456789012345678901234567890)",
        "Stock holds an integer wider than 64 bits (9223372036854775808)",
        "Extra.serials[1] holds an integer wider than 64 bits (-9223372036854775809)",
    ]
    # int64's own bounds, and digits inside a string, are left alone.
    assert entities[1] == {
        "__KEY": "2",
        "Price": 9223372036854775807,
        "Stock": -9223372036854775808,
        "Note": "1234567890123456789012",
    }


@pytest.mark.parametrize("pad", range(4))
@pytest.mark.parametrize("long_floats", [0, 12], ids=["plain", "after-many-long-floats"])
def test_wide_integers_are_found_wherever_they_sit(pad: int, long_floats: int) -> None:
    # The digit test samples every 4th byte: try each alignment, and after many long floats
    # (digit runs that look like candidates but are not 19 digits long).
    noise = [b'{"__KEY":"%d","Cost":0.30000000000000004}' % i for i in range(long_floats)]
    wide = b'{"__KEY":"w","Pad":"%s","Qty":9999999999999999999,"Max":999999999999999999}' % (b"x" * pad)
    entities = page_of(raw_page(*noise, wide))
    assert entities[-1]["Qty"] == "9999999999999999999" and entities[-1]["Max"] == 999999999999999999
    assert entities[-1]["__value_issues"] == ["Qty holds an integer wider than 64 bits (9999999999999999999)"]
    assert all(e["Cost"] == 0.30000000000000004 and "__value_issues" not in e for e in entities[:-1])


def test_bytes_that_are_not_utf8_fail_only_their_record() -> None:
    entities = page_of(
        raw_page(b'{"__KEY":"1","City":"Caf\xe9 \xfc"}', b'{"__KEY":"2","City":"Z\xc3\xbcrich"}')
    )
    assert entities[0]["City"] == "Caf\ufffd \ufffd"
    assert entities[0]["__value_issues"] == [
        "City holds bytes that are not UTF-8 (0xE9, 0xFC) at positions 4, 6"
    ]
    assert entities[1] == {"__KEY": "2", "City": "Zürich"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"__COUNT":2,"__ENTITIES":[{"__KEY":"1"},{"__KEY":"2","Name":"cut sh',  # truncated
        b'{"__COUNT":2,"__ENTITIES":[{"__KEY":"1","Serial":12345678901234567890123',  # truncated, slow path
        b'{"__COUNT":1,"__ENTITIES":[{"__KEY":"1","Price":NaN}]}',
        b"<html>Bad gateway</html>",
    ],
    ids=["truncated", "truncated-wide-number", "nan", "html"],
)
def test_a_body_that_is_not_json_still_fails(body: bytes) -> None:
    with pytest.raises(FourDError, match="4D sent a body that is not JSON") as caught:
        page_of(body)
    assert caught.value.retryable  # a cut-off body is worth another try


# -- the server's today -------------------------------------------------------------------------
def test_server_date_follows_the_date_header_of_the_latest_response() -> None:
    dates = iter(["Sat, 31 Dec 2016 23:59:59 GMT", "Sun, 01 Jan 2017 00:00:01 GMT"])

    def handler(request: httpx.Request) -> httpx.Response:
        response = envelope([], 0)
        response.headers["Date"] = next(dates)
        return response

    fake = FakeFourD(handler)
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        client.page("Products")
        assert client.server_date() == dt.date(2016, 12, 31)
        client.page("Products")
        assert client.server_date() == dt.date(2017, 1, 1)
    assert len(data_requests(fake)) == 2  # no request of its own while answers come in


def test_server_date_asks_the_catalog_when_nothing_was_read_yet() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/rest/$catalog"
        return httpx.Response(
            200, json={"dataClasses": []}, headers={"Date": "Tue, 03 Mar 2026 08:00:00 GMT"}
        )

    fake = FakeFourD(handler)
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        assert client.server_date() == dt.date(2026, 3, 3)
        assert client.server_date() == dt.date(2026, 3, 3)
    assert len([r for r in fake.requests if r.url.path == "/rest/$catalog"]) == 1


def test_server_date_is_none_without_a_date_header() -> None:
    fake = FakeFourD(lambda r: httpx.Response(200, json={"dataClasses": []}))
    with FourDClient(settings(), None, httpx.MockTransport(fake)) as client:
        assert client.server_date() is None
        assert client.server_date() is None
    assert len([r for r in fake.requests if r.url.path == "/rest/$catalog"]) == 1
