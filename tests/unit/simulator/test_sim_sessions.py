"""Login, cookies, licences, access modes and idle expiry (checklist 19-23)."""

from __future__ import annotations

import time

import httpx
import pytest
from sim_helpers import rest

LOGIN = "/$directory/login"


def login(c: httpx.Client, user: str = "sync", pw: str = "secret", **headers: str) -> httpx.Response:
    return c.post(LOGIN, headers={"username-4D": user, "password-4D": pw, **headers})


def test_item19_login_headers_result_and_cookie(make_server) -> None:
    """Checklist 19: POST $directory/login headers -> {"result": true|false} + Set-Cookie; GET refused."""
    sim = make_server(username="sync", password="secret", hashed_password="ABCDEF")
    with rest(sim) as c:
        r = login(c, **{"session-4D-length": "120"})
        assert r.status_code == 200
        assert r.json() == {"result": True}
        assert "WASID4D" in r.cookies
        assert c.get("/Products", params={"$top": 1}).status_code == 200
    with rest(sim) as c:
        r = login(c, pw="wrong")
        assert r.json() == {"result": False}
        assert "WASID4D" not in r.cookies
        assert c.post(LOGIN, headers={"username-4D": "sync", "hashed-password-4D": "ABCDEF"}).json() == {
            "result": True
        }
    with rest(sim) as c:
        r = c.get(LOGIN, headers={"username-4D": "sync", "password-4D": "secret"})
        assert r.status_code == 500
        assert "__ERROR" in r.json()
    assert sim.stats.logins == 3
    assert sim.stats.failed_logins == 1


def test_item20_cookie_name_and_new_session_without_cookie(make_server) -> None:
    """Checklist 20: cookie 4DSID_<App> configurable; a request without cookie opens a new session."""
    sim = make_server(cookie_name="4DSID_LegacyERP")
    with rest(sim) as c:
        r = c.get("/Products", params={"$top": 1})
        assert "4DSID_LegacyERP" in r.cookies
        assert "WASID4D" not in r.cookies
        c.get("/Products", params={"$top": 1})
    assert sim.stats.sessions_created == 1
    for _ in range(3):
        httpx.get(sim.base_url + "/rest/Products", params={"$top": 1})  # no cookie jar reuse
    assert sim.stats.sessions_created == 4
    assert sim.stats.active_sessions == 4


def test_item21_licence_pool_exhaustion_402(make_server) -> None:
    """Checklist 21: each new session takes a licence until idle timeout; exhausted -> 402 / 1823."""
    sim = make_server(licences=2, session_idle_seconds=0.5)
    holders = [rest(sim), rest(sim)]
    for c in holders:
        assert c.get("/Products", params={"$top": 1}).status_code == 200
    r = httpx.get(sim.base_url + "/rest/Products")
    assert r.status_code == 402
    assert r.json() == {
        "__ERROR": [
            {
                "message": "Maximum number of sessions has been reached",
                "componentSignature": "dbmg",
                "errCode": 1823,
            }
        ]
    }
    assert holders[0].get("/Products", params={"$top": 1}).status_code == 200  # valid cookie reuses
    assert sim.stats["402s"] == 1
    time.sleep(0.7)  # licences come back only after the idle timeout
    assert httpx.get(sim.base_url + "/rest/Products").status_code == 200
    for c in holders:
        c.close()


def test_item22_access_modes(make_server) -> None:
    """Checklist 22: open (guest sessions), restricted (401), force-login (catalog only until authentify)."""
    restricted = make_server(username="sync", password="secret")
    with rest(restricted) as c:
        r = c.get("/Products")
        assert r.status_code == 401
        assert "__ERROR" in r.json()
        assert restricted.stats.sessions_created == 0
    forced = make_server(username="sync", password="secret", force_login=True, licences=1)
    with rest(forced) as c:
        assert c.get("/$catalog").status_code == 200
        assert forced.stats.active_sessions == 0  # guest without licence
        assert c.get("/Products").status_code == 401
        r = c.post("/$catalog/authentify", json=[{"name": "sync", "password": "secret"}])
        assert r.json() is True
        assert forced.stats.active_sessions == 1
        assert c.get("/Products", params={"$top": 1}).status_code == 200
    with rest(forced) as c:
        assert c.post("/$catalog/authentify", json=[{"name": "sync", "password": "bad"}]).json() is False


def test_item23_idle_expiry_open_and_restricted(make_server) -> None:
    """Checklist 23: a stale cookie gets a new licence-consuming session (open) or 401 (restricted)."""
    sim = make_server(session_idle_seconds=0.3)
    with rest(sim) as c:
        first = c.get("/Products", params={"$top": 1}).cookies["WASID4D"]
        time.sleep(0.5)
        r = c.get("/Products", params={"$top": 1})
        assert r.status_code == 200
        assert r.cookies["WASID4D"] != first
    assert sim.stats.sessions_created == 2
    locked = make_server(username="sync", password="secret", session_idle_seconds=0.3)
    with rest(locked) as c:
        login(c)
        assert c.get("/Products", params={"$top": 1}).status_code == 200
        time.sleep(0.5)
        assert c.get("/Products", params={"$top": 1}).status_code == 401
        login(c, **{"session-4D-length": "120"})  # 120 min = 2x the base idle time
        info = c.get("/$info").json()
        assert info["sessionInfo"][0]["lifeTime"] == 0  # 0.6 s rounds down; shows the field exists


def test_logout_ends_the_session_and_frees_its_licence(make_server) -> None:
    """$directory/logout (POST or the documented GET) -> {"result": true}; session gone, licence back."""
    sim = make_server(username="sync", password="secret", licences=1)
    with rest(sim) as c:
        assert login(c).json() == {"result": True}
        assert c.get("/Products", params={"$top": 1}).status_code == 200
        with rest(sim) as other:
            assert login(other).status_code == 402  # the only licence is held
        r = c.post("/$directory/logout")
        assert r.status_code == 200
        assert r.json() == {"result": True}
        assert sim.stats.active_sessions == 0
        assert c.get("/Products", params={"$top": 1}).status_code == 401  # its cookie is dead
    with rest(sim) as other:
        assert login(other).json() == {"result": True}
        assert other.get("/$directory/logout").json() == {"result": True}
    assert sim.stats.active_sessions == 0
    assert httpx.post(sim.base_url + "/rest/$directory/logout").json() == {"result": True}  # no session
    open_ = make_server(licences=1)
    with rest(open_) as c:
        assert c.get("/Products", params={"$top": 1}).status_code == 200
        assert httpx.get(open_.base_url + "/rest/Products").status_code == 402
        c.post("/$directory/logout")
        assert httpx.get(open_.base_url + "/rest/Products").status_code == 200
    old = make_server(logout_endpoint=False)
    r = httpx.post(old.base_url + "/rest/$directory/logout")
    assert r.status_code == 404
    assert r.json()["__ERROR"][0]["errCode"] == 1800


def test_balancer_cookie_on_every_response_is_not_a_session(make_server) -> None:
    """balancer_cookie: SRVID=node1 set on every response; a request carrying only it has no session."""
    sim = make_server(balancer_cookie="SRVID")
    with rest(sim) as c:
        r = c.get("/Products", params={"$top": 1})
        assert "SRVID=node1; Path=/" in r.headers.get_list("set-cookie")
        assert set(r.cookies) == {"SRVID", "WASID4D"}
        assert "SRVID" in c.get("/Nope").cookies  # errors too
        sim.faults.set("error_503", count=1)
        assert "SRVID" in c.get("/Products").cookies  # and fault answers
        assert "SRVID" in httpx.get(sim.base_url + "/_sim/stats").cookies
    for _ in range(3):
        r = httpx.get(sim.base_url + "/rest/Products", params={"$top": 1}, cookies={"SRVID": "node1"})
        assert r.status_code == 200
        assert "WASID4D" in r.cookies  # a new 4D session each time
    assert sim.stats.sessions_created == 4
    locked = make_server(username="sync", password="secret", balancer_cookie="SRVID")
    r = httpx.get(locked.base_url + "/rest/Products", cookies={"SRVID": "node1"})
    assert r.status_code == 401
    with pytest.raises(ValueError, match="cookie_name"):
        make_server(balancer_cookie="WASID4D")
