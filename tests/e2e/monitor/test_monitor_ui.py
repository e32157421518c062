"""The sync monitor in a real Airflow UI, driven by headless Chromium, after real sync runs.

One stack, shared with test_monitor_access.py (``synced`` in conftest.py). Two runs produce what
the monitor shows: the scheduled run that starts when the DAG is unpaused (every table, some
records rejected by validation), then a manual run in which 4D refuses the Invoices table
(Invoices FAILED, the rest loads) after the 4D developer added a field (schema drift). Then the
cutover DAGs run: ``legacy_erp_diff`` (coverage and the legacy-vs-ERP diff, with one difference
planted in ``erp``) and the ``legacy_erp_freshness`` watchdog (a limit of one minute, so the
Invoices table, not synced since the first run, is stale). The browser signs in, opens "Legacy
sync" from Airflow's navigation, filters, opens a log with rejected records, downloads the CSV,
follows the run to Airflow, opens the Cutover page (readiness, trend, differing keys as CSV,
freshness, drift, coverage), and leaves screenshots in ``test-artifacts/monitor/``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.airflow_stack import PROJECT_ROOT, AirflowStack

from .conftest import DAG_ID, Synced

pytestmark = pytest.mark.e2e

playwright_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the browser test needs the `playwright` package (a dev dependency: `make install`)",
)
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
# No network here: keep Chromium from phoning home (this machine has no network).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "monitor"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        # CI installs it (.ci/run); on a developer's machine say how, instead of failing.
        message = f"no Chromium at {CHROMIUM}: `apt-get install chromium` to run the browser test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    failures_before = request.session.testsfailed
    try:
        yield page
    finally:
        if request.session.testsfailed > failures_before:  # the call phase failed: keep what it saw
            _shot(page, f"failure-{request.node.name}")
        context.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _open_monitor(page: Any, stack: AirflowStack) -> Any:
    """Sign in as admin, then Browse -> Legacy sync (rendered inside Airflow's frame)."""
    page.goto(stack.base_url + "/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(stack.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(stack.base_url + "/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Legacy sync").click()
    return page.frame_locator("iframe")


def _log_row(stack: AirflowStack, table: str, run_id: str) -> dict[str, Any]:
    with psycopg.connect(stack.erp_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(
            "select * from legacy_sync.sync_log where table_name = %s and run_id = %s", (table, run_id)
        ).fetchone()
    assert row is not None
    return row


def test_a_signed_in_user_finds_failed_tables_and_rejected_records(synced: Synced, page: Any) -> None:
    stack = synced.stack
    monitor = _open_monitor(page, stack)
    monitor.get_by_role("heading", name="Sync log").wait_for()
    assert monitor.locator("#records-chart svg").count() == 1
    assert monitor.locator("#rejects-chart svg").count() == 1
    _shot(page, "01-monitor-in-airflow-nav")

    # The failed table of the manual run, with the reason in words.
    monitor.locator("#filter-status").select_option("FAILED")
    monitor.locator("#filter-table").select_option("Invoices")
    monitor.get_by_role("button", name="Filter").click()
    rows = monitor.locator("#sync-log tbody tr[data-log-id]")
    expect(rows).to_have_count(1)  # retries until the filtered page has replaced the full list
    expect(rows.first.locator("td").first).to_have_text("Invoices")
    expect(rows.first).to_contain_text("failed")
    expect(monitor.locator("#sync-log .error-text").first).to_contain_text("1800")
    _shot(page, "02-filtered-to-failed-table")

    # A table with rejected records: its detail page lists them with their reasons and raw data.
    rejected = _log_row(stack, "OrderLines", synced.scheduled_run)
    assert rejected["status"] == "PARTIALLY_COMPLETED" and rejected["records_failed"] > 0
    monitor.locator("#filter-status").select_option("PARTIALLY_COMPLETED")
    monitor.locator("#filter-table").select_option("OrderLines")
    monitor.get_by_role("button", name="Filter").click()
    monitor.locator(f"#sync-log tr[data-log-id='{rejected['id']}'] td a").first.click()
    monitor.get_by_role("heading", name="Rejected records").wait_for()
    errors = monitor.locator("#sync-errors tbody tr")
    expect(errors).to_have_count(min(rejected["records_failed"], 50))
    first = errors.first
    record_id = first.locator("td").nth(0).inner_text()
    assert first.locator("td.reasons").inner_text().strip(), "a rejected record shows its reasons"
    first.locator("details.raw summary").click()
    assert f'"__KEY": "{record_id}"' in first.locator("details.raw pre").inner_text()
    _shot(page, "03-log-detail-with-rejected-records")

    # The CSV for the ERP team: one line per rejected record.
    with page.expect_download() as download_info:
        monitor.locator("#csv-link").click()
    download = download_info.value
    assert download.suggested_filename == f"sync-errors-OrderLines-{rejected['id']}.csv"
    lines = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
    assert len(lines) == rejected["records_failed"]
    assert all(line["reasons"] for line in lines)

    # The run view groups the run's tables and links to the run in Airflow.
    monitor.get_by_role("link", name=f"run {synced.scheduled_run}", exact=True).click()
    expect(monitor.locator("#run-tables tbody tr")).to_have_count(7)
    _shot(page, "04-run-view")
    monitor.locator("#airflow-run-link").click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/**")
    # ... where the run page has a "Sync log" tab with the same view.
    page.get_by_role("link", name="Sync log", exact=True).click()
    page.frame_locator("iframe").locator("#run-tables").wait_for()
    _shot(page, "05-airflow-run-page-sync-log-tab")


def test_the_cutover_page_shows_readiness_freshness_drift_and_coverage(synced: Synced, page: Any) -> None:
    stack = synced.stack
    monitor = _open_monitor(page, stack)
    monitor.locator("#cutover-link").click()
    monitor.get_by_role("heading", name="Cutover: can the legacy ERP be switched off?").wait_for()

    # Readiness: the diff found the one planted difference, with its column, and the trend is drawn.
    expect(monitor.locator("#card-readiness b")).to_contain_text("%")
    expect(monitor.locator("#diff-tables tbody tr")).to_have_count(7)
    expect(monitor.locator("#diff-tables tr[data-table='Products']")).to_contain_text("list_price (1)")
    assert monitor.locator("#readiness-chart svg polyline, #readiness-chart svg circle").count() >= 1
    # Freshness: Invoices has not synced since the first run; the watchdog alerted once.
    invoices = monitor.locator("#freshness-tables tr[data-table='Invoices']")
    expect(invoices).to_contain_text("stale")
    expect(invoices).to_contain_text("alerted")
    # Drift: the field the 4D developer added (info) and the table 4D stopped showing (breaking).
    drift = monitor.locator("#drift-rows")
    expect(drift).to_contain_text("new field Region")
    expect(drift.locator("tr", has_text="Invoices")).to_contain_text("breaking")
    # Coverage: the new field is not synced.
    expect(monitor.locator("#coverage-verdict")).to_contain_text("No:")
    expect(monitor.locator("#coverage-findings")).to_contain_text("Customers.Region")
    _shot(page, "06-cutover")

    with page.expect_download() as download_info:
        monitor.locator("#diff-csv-link").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8-sig"))))
    assert ("Products", synced.planted_product, "different", "list_price") in {
        (r["table"], r["legacy_id"], r["status"], r["columns"]) for r in rows
    }
    # One digest per sync run (no notifier configured here: decided and logged, not suppressed).
    with psycopg.connect(stack.erp_url) as conn:
        digests = conn.execute(
            "select run_id, sent from legacy_sync.digest_log order by created_at"
        ).fetchall()
    assert digests == [(synced.scheduled_run, True), (synced.failed_run, True)]


def test_a_browser_that_never_signed_in_is_sent_to_sign_in(synced: Synced, browser: Any) -> None:
    # Every route's 401/403 over plain HTTP, per user and permission: tests/e2e/test_monitor_access.py.
    stack = synced.stack
    context = browser.new_context()
    try:
        anonymous_page = context.new_page()
        anonymous_page.goto(stack.base_url + "/legacy-sync/")
        anonymous_page.get_by_role("button", name="Sign in").wait_for()
        assert "/auth/login" in anonymous_page.url
        assert "Sync log" not in anonymous_page.content()
    finally:
        context.close()


def test_signed_in_api_clients_may_read_but_nothing_writes(synced: Synced) -> None:
    stack = synced.stack
    listing = stack.request("GET", "/legacy-sync/", params={"status": "FAILED"})
    assert listing.status_code == 200 and "Invoices" in listing.text
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert stack.request(method, "/legacy-sync/").status_code == 405, method
    assert stack.request("GET", "/legacy-sync/", params={"status": "DROPPED"}).status_code == 400
    assert stack.request("GET", "/legacy-sync/logs/999999999").status_code == 404
