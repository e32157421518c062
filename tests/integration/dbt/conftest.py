"""Fixtures for the dbt project's integration tests."""

from __future__ import annotations

import pytest

from .landing import prepare_database


@pytest.fixture
def erp_db(erp_db_url: str) -> str:
    """A fresh ERP database with the sync's DDL and the seven raw landing tables."""
    prepare_database(erp_db_url)
    return erp_db_url
