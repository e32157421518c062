"""``Legacy4DHook``: the Airflow face of the 4D REST client (connection type ``legacy_4d``)."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from legacy_sync import lineage
from legacy_sync.contracts import FOURD_CONN_ID, FOURD_CONN_TYPE
from legacy_sync.fourd import FourDClient, FourDSettings
from legacy_sync.fourd.auth import DEFAULT_SESSION_COOKIES, SessionStore

DEFAULT_PAGE_SIZE = 2000
DEFAULT_SCHEME = "https"

log = logging.getLogger(__name__)


def _extra(extras: dict[str, Any], name: str, default: Any) -> Any:
    # The UI's form stores plain names; older forms used extra__<conn_type>__<name>.
    for key in (name, f"extra__legacy_4d__{name}"):
        if extras.get(key) not in (None, ""):
            return extras[key]
    return default


def _as_names(value: Any) -> tuple[str, ...]:
    """A list of names from a JSON list or a comma-separated string."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in {"false", "0", "no", "off"}
    return bool(value)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine (traffic to it never crosses a network)."""
    name = (host or "").strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Legacy4DHook(BaseHook):
    """Reads a legacy 4D ERP over its REST API.

    The hook is stateless: it builds a :class:`FourDClient` per use. The 4D session (a client
    licence) outlives it in the given :class:`SessionStore`, so tasks and runs share one.

    Connection fields: host, port, schema (``https`` by default, or ``http``), login, password;
    extras: ``page_size``, ``verify_tls``, ``ca_bundle``, ``allow_insecure_http``,
    ``session_minutes``, ``connect_timeout``, ``read_timeout``, ``session_cookie_names``.
    """

    conn_name_attr = "legacy_4d_conn_id"
    default_conn_name = FOURD_CONN_ID
    conn_type = FOURD_CONN_TYPE
    hook_name = "Legacy 4D ERP (REST)"

    def __init__(
        self,
        legacy_4d_conn_id: str = default_conn_name,
        session_store: SessionStore | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.legacy_4d_conn_id = legacy_4d_conn_id
        self.session_store = session_store

    def settings(self) -> FourDSettings:
        """Client settings from the Airflow connection (env ``AIRFLOW_CONN_LEGACY_4D_DEFAULT`` works too).

        The scheme defaults to ``https``. Plain ``http`` to a host other than this machine sends the
        4D password (``password-4D`` header) and the session cookie in clear: it is refused unless
        the extra ``allow_insecure_http`` is true, and then a warning is logged every time (every
        task of every run). TLS verification off is warned about the same way.
        """
        conn = self.get_connection(self.legacy_4d_conn_id)
        extras = conn.extra_dejson
        scheme = (conn.schema or DEFAULT_SCHEME).lower()
        if scheme not in {"http", "https"}:
            raise ValueError(
                f"connection {self.legacy_4d_conn_id}: schema must be http or https, not {scheme!r}"
            )
        remote = not is_loopback(conn.host)
        if scheme == "http" and remote:
            if not _as_bool(_extra(extras, "allow_insecure_http", False)):
                raise ValueError(
                    f"connection {self.legacy_4d_conn_id}: plain http to {conn.host} would send the 4D "
                    "password and session cookie across the network in clear. Use schema https (extra "
                    "`ca_bundle` for an internal CA), or set the extra `allow_insecure_http` to true to "
                    "accept that risk."
                )
            log.warning(
                "connection %s: plain http to %s (allow_insecure_http): the 4D password and session "
                "cookie cross the network in clear; switch the connection to https",
                self.legacy_4d_conn_id,
                conn.host,
            )
        verify_tls = _as_bool(_extra(extras, "verify_tls", True))
        if scheme == "https" and remote and not verify_tls:
            log.warning(
                "connection %s: TLS certificate verification is off (verify_tls=false): anyone on the "
                "path to %s can read the 4D password; use the extra `ca_bundle` for an internal CA",
                self.legacy_4d_conn_id,
                conn.host,
            )
        ca_bundle = str(_extra(extras, "ca_bundle", "") or "").strip() or None
        if ca_bundle and not Path(ca_bundle).is_file():
            raise ValueError(f"connection {self.legacy_4d_conn_id}: ca_bundle {ca_bundle} is not a file")
        port = f":{conn.port}" if conn.port else ""
        return FourDSettings(
            base_url=f"{scheme}://{conn.host}{port}",
            username=conn.login or None,
            password=conn.password or None,
            page_size=int(_extra(extras, "page_size", DEFAULT_PAGE_SIZE)),
            verify_tls=verify_tls,
            ca_bundle=ca_bundle,
            session_minutes=int(_extra(extras, "session_minutes", 120)),
            connect_timeout=float(_extra(extras, "connect_timeout", 10)),
            read_timeout=float(_extra(extras, "read_timeout", 120)),
            session_cookies=_as_names(
                _extra(extras, "session_cookie_names", ",".join(DEFAULT_SESSION_COOKIES))
            ),
        )

    def get_conn(self) -> FourDClient:
        """A client on this connection's 4D server, sharing the stored session."""
        # httpx logs every request at INFO: thousands of lines per table in a task log. Our own
        # progress lines (records, % of __COUNT, rate) say what matters.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        settings = self.settings()
        # Lineage: each dataclass it reads records of is an input of the task (OpenLineage), told to
        # Airflow's hook lineage collector. Without a lineage backend: a plain client, no cost.
        report = lineage.fourd_read_reporter(self, settings.base_url)
        if report is not None:
            return lineage.ReportingFourDClient(settings, self.session_store, report)
        return FourDClient(settings, store=self.session_store)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: log in and read ``$catalog``."""
        try:
            with self.get_conn() as client:
                names = client.catalog()
        except Exception as exc:
            from legacy_sync.pipeline import airflow_advice

            return False, f"{exc}{airflow_advice(exc, self.legacy_4d_conn_id)}"
        return True, f"Connected; 4D exposes {len(names)} dataclasses: {', '.join(names[:12])}"


def shared_session_client(conn_id: str = Legacy4DHook.default_conn_name) -> FourDClient:
    """A client on ``conn_id`` whose 4D session (a licence) every task and run shares.

    The session is kept, encrypted, in the ERP database (``legacy_sync.fourd_session``).
    """
    from legacy_sync import erp_db
    from legacy_sync.session_store import PostgresSessionStore

    store = PostgresSessionStore(erp_db.conninfo_from_airflow(), conn_id)
    return Legacy4DHook(conn_id, session_store=store).get_conn()
