"""Provider metadata: registers connection type ``legacy_4d`` with its form in the Airflow UI, and
the asset URI schemes ``legacy4d`` and ``erp-postgres`` (lineage, see ``legacy_sync.lineage``).

Only a provider entry point (``apache_airflow_provider`` in pyproject.toml) can add a
connection form; plugins cannot.
"""

from __future__ import annotations

from typing import Any

from legacy_sync.contracts import FOURD_CONN_TYPE


def get_provider_info() -> dict[str, Any]:
    """Called by Airflow's providers manager through the entry point."""
    return {
        "package-name": "legacy-erp-sync",
        "name": "Legacy 4D ERP sync",
        "description": "Reads a legacy 4D ERP over 4D's REST API and syncs it into the ERP's PostgreSQL.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "hook-class-name": "legacy_sync.hook.Legacy4DHook",
                "hook-name": "Legacy 4D ERP (REST)",
                "connection-type": FOURD_CONN_TYPE,
                "conn-fields": {
                    "page_size": {
                        "label": "Page size",
                        "description": "Records per request ($top). 1000-5000 suits most 4D servers.",
                        "schema": {"type": ["integer", "null"], "default": 2000, "minimum": 1},
                    },
                    "verify_tls": {
                        "label": "Verify TLS certificate",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "ca_bundle": {
                        "label": "CA bundle (PEM file)",
                        "description": "Path of the CA certificate(s) that signed 4D's certificate "
                        "(an internal CA); they replace the public CAs for this connection.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "allow_insecure_http": {
                        "label": "Allow plain http to a remote host",
                        "description": "Sends the 4D password and session cookie in clear; "
                        "a warning is logged on every run. Prefer https.",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "session_minutes": {
                        "label": "Session length (minutes)",
                        "description": "Idle timeout asked of 4D (minimum 60); the session is reused.",
                        "schema": {"type": ["integer", "null"], "default": 120, "minimum": 60},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 10},
                    },
                    "session_cookie_names": {
                        "label": "4D session cookie names",
                        "description": "Comma-separated; * ends a prefix. Other cookies (a load "
                        "balancer's) are sent back but never taken for the 4D session.",
                        "schema": {"type": ["string", "null"], "default": "WASID4D,4DSID_*"},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "description": "How long one page may take to arrive.",
                        "schema": {"type": ["number", "null"], "default": 120},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    "relabeling": {
                        "schema": "Scheme (https, or http)",
                        "login": "4D user",
                        "password": "4D password",
                    },
                    "placeholders": {"host": "erp.example.com", "port": "8044", "schema": "https"},
                },
            }
        ],
        # Lineage (legacy_sync/lineage.py): the 4D dataclasses the hook reads, and the ERP database's
        # tables as the sync reports them (with row counts and reconciliation results).
        "asset-uris": [
            {
                "schemes": ["legacy4d"],
                "handler": "legacy_sync.lineage.sanitize_fourd_uri",
                "factory": "legacy_sync.lineage.create_fourd_asset",
                "to_openlineage_converter": "legacy_sync.lineage.fourd_to_openlineage",
            },
            {
                "schemes": ["erp-postgres"],
                "handler": "legacy_sync.lineage.sanitize_erp_uri",
                "factory": "legacy_sync.lineage.create_erp_asset",
                "to_openlineage_converter": "legacy_sync.lineage.erp_to_openlineage",
            },
        ],
    }
