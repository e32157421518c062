"""Who may see what in the sync monitor, over HTTP against a real api-server (no browser needed).

The api-server of the stack test_monitor_ui.py drives too (``synced`` in conftest.py), with
Airflow's simple auth manager extended to deny two users (tests/e2e/denying_auth_manager.py), and
a sync log row with a rejected record seeded straight into its ERP database beside what the real
runs wrote; the tests read only the seeded row. The monitor reads it with its own SELECT-only role.

- no credentials, or forged ones: 401/403 on every route (a browser is sent to sign in);
- a signed-in user the auth manager denies (on either sync DAG): 403 on every route;
- a viewer (may read runs): counts, record keys and reasons, but no raw 4D record;
- a user who may change the sync DAGs' runs (role ``user`` and up): the raw records too.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from legacy_sync import ledger
from tests.e2e.airflow_stack import AirflowStack

from .conftest import Synced

pytestmark = pytest.mark.e2e

RUN_ID = "scheduled__2026-03-01T06:00:00+00:00"  # no real run of the stack has this id
EMAIL = "jane.doe@example.com"  # customer data inside the raw 4D record
REASON = "EmailAddress is not a valid address"


@dataclass
class Seeded:
    stack: AirflowStack
    log_id: int
    error_id: int
    admin_url: str
    """The ERP database as its superuser (the stack's erp_postgres_default is the sync's role)."""

    @property
    def routes(self) -> list[str]:
        return [
            "/legacy-sync/",
            f"/legacy-sync/logs/{self.log_id}",
            f"/legacy-sync/logs/{self.log_id}/errors.csv",
            f"/legacy-sync/errors/{self.error_id}/record.json",
            f"/legacy-sync/runs/{quote(RUN_ID, safe='')}",
        ]

    def get(self, user: str | None, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.stack.token(user)}"} if user else {}
        with httpx.Client(base_url=self.stack.base_url, follow_redirects=False, timeout=30) as http:
            return http.get(path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)


def _seed(erp_url: str) -> tuple[int, int]:
    with psycopg.connect(erp_url, autocommit=True) as conn:
        ledger.apply_schema(conn)
        log_id = conn.execute(
            "insert into legacy_sync.sync_log (run_id, table_name, mode, status, records_processed,"
            " records_created, records_failed, start_time, end_time)"
            " values (%s, 'Customers', 'incremental', 'PARTIALLY_COMPLETED', 3, 2, 1, now(), now())"
            " returning id",
            (RUN_ID,),
        ).fetchone()[0]
        error_id = conn.execute(
            "insert into legacy_sync.sync_error (sync_log_id, record_id, error_message, record_data)"
            " values (%s, '42', %s, %s) returning id",
            (log_id, REASON, Jsonb({"__KEY": "42", "EmailAddress": EMAIL, "FirstName": "Jane"})),
        ).fetchone()[0]
    return log_id, error_id


@pytest.fixture(scope="module")
def seeded(synced: Synced) -> Seeded:
    log_id, error_id = _seed(synced.stack.erp_url)
    return Seeded(synced.stack, log_id, error_id, synced.admin_url)


def test_every_route_refuses_requests_without_credentials(seeded: Seeded) -> None:
    for path in seeded.routes:
        anonymous = seeded.get(None, path)
        assert anonymous.status_code == 401, path
        assert EMAIL not in anonymous.text and REASON not in anonymous.text
        forged = seeded.get(None, path, headers={"Authorization": "Bearer not-a-jwt"})
        assert forged.status_code in (401, 403), path
        cookie = seeded.get(None, path, cookies={"_token": "forged"})
        assert cookie.status_code in (401, 403), path
        # A browser is sent to Airflow's sign-in page, and back afterwards.
        browser = seeded.get(None, path, headers={"Accept": "text/html"})
        assert browser.status_code == 303 and browser.headers["location"].startswith("/auth/login"), path


@pytest.mark.parametrize("user", ["outsider", "hourly"])
def test_a_signed_in_user_the_auth_manager_denies_gets_403_on_every_route(seeded: Seeded, user: str) -> None:
    # "hourly" may read legacy_erp_sync but not the weekly DAG, whose runs the monitor also shows.
    for path in seeded.routes:
        denied = seeded.get(user, path)
        assert denied.status_code == 403, (user, path, denied.status_code)
        assert EMAIL not in denied.text and REASON not in denied.text


def test_a_viewer_sees_keys_and_reasons_but_no_raw_record(seeded: Seeded) -> None:
    listing = seeded.get("viewer", "/legacy-sync/")
    assert listing.status_code == 200 and "Customers" in listing.text
    assert seeded.get("viewer", f"/legacy-sync/runs/{quote(RUN_ID, safe='')}").status_code == 200
    detail = seeded.get("viewer", f"/legacy-sync/logs/{seeded.log_id}")
    assert detail.status_code == 200
    assert ">42<" in detail.text and REASON in detail.text
    assert EMAIL not in detail.text and "record.json" not in detail.text
    csv_body = seeded.get("viewer", f"/legacy-sync/logs/{seeded.log_id}/errors.csv")
    assert csv_body.status_code == 200
    header, row = csv_body.text.removeprefix("\ufeff").splitlines()
    assert header == "table,run_id,record_id,reasons,rejected_at"
    assert "42" in row and REASON in row and EMAIL not in csv_body.text
    assert seeded.get("viewer", f"/legacy-sync/errors/{seeded.error_id}/record.json").status_code == 403


@pytest.mark.parametrize("user", ["operator", "admin"])
def test_users_who_may_change_the_sync_runs_see_raw_records(seeded: Seeded, user: str) -> None:
    detail = seeded.get(user, f"/legacy-sync/logs/{seeded.log_id}")
    assert detail.status_code == 200 and EMAIL in detail.text
    csv_body = seeded.get(user, f"/legacy-sync/logs/{seeded.log_id}/errors.csv")
    assert csv_body.text.removeprefix("\ufeff").startswith(
        "table,run_id,record_id,reasons,rejected_at,record_data"
    )
    assert EMAIL in csv_body.text
    record = seeded.get(user, f"/legacy-sync/errors/{seeded.error_id}/record.json")
    assert record.status_code == 200 and record.json()["EmailAddress"] == EMAIL


def test_every_answer_carries_security_headers(seeded: Seeded) -> None:
    answers = [
        seeded.get(None, "/legacy-sync/"),  # 401
        seeded.get("outsider", "/legacy-sync/"),  # 403
        seeded.get("admin", "/legacy-sync/"),
        seeded.get("admin", f"/legacy-sync/logs/{seeded.log_id}"),
        seeded.get("admin", f"/legacy-sync/logs/{seeded.log_id}/errors.csv"),
        seeded.get("admin", f"/legacy-sync/errors/{seeded.error_id}/record.json"),
    ]
    for answer in answers:
        csp = answer.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp, answer.url
        assert answer.headers.get("x-frame-options") == "SAMEORIGIN", answer.url
        assert answer.headers.get("x-content-type-options") == "nosniff", answer.url
        assert answer.headers.get("cache-control") == "no-store", answer.url
    page = answers[3]
    [nonce] = re.findall(r"script-src 'nonce-([^']+)'", page.headers["content-security-policy"])
    assert f'<script nonce="{nonce}">' in page.text and f'<style nonce="{nonce}">' in page.text
    assert "style=" not in page.text and "unsafe-inline" not in page.headers["content-security-policy"]
    other = seeded.get("admin", f"/legacy-sync/logs/{seeded.log_id}")
    assert nonce not in other.headers["content-security-policy"], "a fresh nonce per answer"


def test_an_absurd_page_number_is_a_client_error_not_a_server_error(seeded: Seeded) -> None:
    for path in ("/legacy-sync/", f"/legacy-sync/logs/{seeded.log_id}"):
        for page in (10**20, 9_223_372_036_854_775_807, 100_001):
            assert seeded.get("admin", path, params={"page": page}).status_code == 422, (path, page)
        assert seeded.get("admin", path, params={"page": 100_000}).status_code == 200


def _api_server_log(stack: AirflowStack) -> str:
    return (stack.log_dir / "api-server.log").read_text(errors="replace")


def _wait_for_log(stack: AirflowStack, text: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in _api_server_log(stack):
            return True
        time.sleep(0.2)
    return False


def _as_admin(seeded: Seeded, statement: str) -> None:
    role = seeded.stack.monitor_role
    assert role is not None
    with psycopg.connect(seeded.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(role=sql.Identifier(role)))


def test_a_database_failure_is_a_generic_503_with_the_reason_in_the_server_log(seeded: Seeded) -> None:
    stack = seeded.stack
    role = stack.monitor_role
    assert role is not None
    _as_admin(seeded, "alter role {role} nologin")
    try:
        answer = seeded.get("admin", "/legacy-sync/")
    finally:
        _as_admin(seeded, "alter role {role} login")
    assert answer.status_code == 503
    assert "cannot read the ERP database" in answer.text
    port = str(httpx.URL(stack.erp_url.replace("postgresql://", "http://", 1)).port)
    database = urlsplit(stack.erp_url).path.lstrip("/")
    for detail in (role, "127.0.0.1", port, "login", "password", database):
        assert detail not in answer.text, f"the 503 page shows {detail!r}"
    assert _wait_for_log(stack, role), "the server log says why"
    assert seeded.get("admin", "/legacy-sync/").status_code == 200, "and it recovers"


def test_a_monitor_role_that_could_write_is_refused(seeded: Seeded) -> None:
    stack = seeded.stack
    _as_admin(seeded, "grant insert on legacy_sync.sync_log to {role}")
    try:
        answer = seeded.get("admin", "/legacy-sync/")
    finally:
        _as_admin(seeded, "revoke insert on legacy_sync.sync_log from {role}")
    assert answer.status_code == 503 and "Customers" not in answer.text
    assert _wait_for_log(stack, "can do more than read the sync log")
