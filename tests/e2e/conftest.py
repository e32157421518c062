"""End-to-end fixtures: the Airflow metadata template of tests/e2e/airflow_stack.py goes with the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.airflow_stack import drop_metadata_templates


@pytest.fixture(scope="session", autouse=True)
def _metadata_templates(pg_server: Any) -> Iterator[None]:
    """Drops the migrated metadata template (if a stack made one) before the server stops."""
    yield
    drop_metadata_templates(pg_server)
