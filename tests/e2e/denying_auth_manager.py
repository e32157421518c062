"""Airflow's simple auth manager with two users it denies, for tests of the monitor's 403s.

The simple auth manager's roles (viewer < user < op < admin) all may read every DAG; a real
deployment's auth manager (FAB, Keycloak, ...) can deny more. This one denies, through the same
``is_authorized_dag`` the api-server asks:

- ``outsider``: no access to any DAG;
- ``hourly``: everything on ``legacy_erp_sync``, nothing on the weekly ``legacy_erp_full_sync``.

Configured with ``AIRFLOW__CORE__AUTH_MANAGER=tests.e2e.denying_auth_manager.DenyingAuthManager``.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class DenyingAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        name = user.get_name()
        if name == "outsider":
            return False
        if name == "hourly" and details is not None and details.id == "legacy_erp_full_sync":
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
