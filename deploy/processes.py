"""Stopping process trees, for everything that starts Airflow components locally.

Airflow components lead their own process groups and their task processes lead theirs, so
killing a component's group misses its tasks: collect every descendant first, then stop them
all (TERM, a grace period, KILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable

import psutil


def stop_process_trees(procs: Iterable[subprocess.Popen[bytes]], grace_seconds: float = 10.0) -> None:
    """Stop ``procs`` and all their descendants; no process may outlive its owner."""
    procs = list(procs)
    victims: dict[int, psutil.Process] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
            victims[root.pid] = root
            for child in root.children(recursive=True):
                victims[child.pid] = child
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    for victim in victims.values():
        with contextlib.suppress(psutil.Error):
            victim.terminate()
    _, alive = psutil.wait_procs(list(victims.values()), timeout=grace_seconds)
    for victim in alive:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    psutil.wait_procs(alive, timeout=5)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
