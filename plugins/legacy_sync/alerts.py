"""What happens when a sync runs far longer than usual (a Deadline Alert's callback).

It runs in the triggerer. It logs an error that names the run and what to check; a
deployment that pages people wires its notifier here (Slack, e-mail) in one place.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


async def sync_overdue(dag_id: str, limit_minutes: int, **context: Any) -> None:
    """Deadline missed: the run is still going ``limit_minutes`` after it was queued."""
    run = context.get("dag_run") or context.get("context", {}).get("dag_run")
    run_id = run.get("run_id") if isinstance(run, dict) else getattr(run, "run_id", run)
    log.error(
        "legacy sync %s (run %s) is still running %d minutes after it was queued: check the 4D server "
        "(slow pages, licences), the extract_and_land logs for its rate, and locks on the ERP database",
        dag_id,
        run_id,
        limit_minutes,
    )
