"""What the command line (``legacy_sync.cli`` and ``legacy_sync.cutover_cli``) prints with and connects to."""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console
from rich.text import Text

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def plain(value: object) -> Text:
    """Text from the database or a 4D server, shown as is: ``[red]`` or ``[/x]`` in it is not markup."""
    return Text("" if value is None else str(value))


def erp_conninfo(args: argparse.Namespace) -> str:
    """``--database-url``, ``ERP_DATABASE_URL``, else Airflow's ``erp_postgres_default``."""
    url = getattr(args, "database_url", None) or os.environ.get("ERP_DATABASE_URL")
    if url:
        return str(url)
    from legacy_sync.erp_db import conninfo_from_airflow

    return conninfo_from_airflow()
