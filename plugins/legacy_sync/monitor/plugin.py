"""The Airflow plugin: the monitor app on the api-server and its "Legacy sync" navigation entry.

Registered through the ``airflow.plugins`` entry point (pyproject.toml). Every Airflow component
loads plugins, most of them never serve HTTP, so this module stays cheap to import: the FastAPI app
(and Airflow's API security code it uses) is built on the first request the api-server routes to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from legacy_sync.contracts import MONITOR_URL_PREFIX

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _LazyMonitorApp:
    """An ASGI app that builds :func:`legacy_sync.monitor.app.create_app` when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from legacy_sync.monitor.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class LegacySyncMonitorPlugin(AirflowPlugin):
    """Sync monitor: sync_log / sync_error, read-only, inside the Airflow UI."""

    name = "legacy_sync_monitor"
    fastapi_apps = [
        {"app": _LazyMonitorApp(), "url_prefix": MONITOR_URL_PREFIX, "name": "Legacy sync monitor"},
    ]
    external_views = [
        # The main entry: Airflow renders the monitor in its own frame at /plugin/legacy-sync.
        {
            "name": "Legacy sync",
            "href": f"{MONITOR_URL_PREFIX}/",
            "url_route": "legacy-sync",
            "destination": "nav",
            "category": "browse",
        },
        # A tab on every DAG run page: what that run did to each table.
        {
            "name": "Sync log",
            "href": f"{MONITOR_URL_PREFIX}/runs/{{RUN_ID}}",
            "url_route": "legacy-sync-run",
            "destination": "dag_run",
        },
    ]
