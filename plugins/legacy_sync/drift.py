"""Schema drift: 4D's ``$catalog`` of every synced table, compared with what the last run saw.

The 4D developer keeps changing the legacy ERP during the parallel run. A field added in 4D is
data the new ERP never receives unless someone notices; a removed field or an un-exposed table
stops a table. Each run reads ``$catalog/<Dataclass>`` once per table in its extract step (the
same read the landing step uses), compares the attributes that hold data (name, type, length
when 4D reports one, exposure, primary key) with the snapshot in ``legacy_sync.catalog_snapshot``
and reports every change once, in the task log, ``legacy_sync.schema_drift`` (the monitor) and
the run's digest:

=========  =====================================================================================
info       a new field (not synced until the registry declares it), a field the sync does not
           read removed, a table exposed again
warning    a type or length change, a field's scope changed, change tracking (``__GlobalStamp``)
           switched off
breaking   the primary key removed or changed, a registry field removed, the table un-exposed
=========  =====================================================================================

Per-table policy (``registry.LegacyTable.drift_policy``, overridable per deployment with
``LEGACY_SYNC_DRIFT_POLICY="Products=freeze,*=evolve"``):

- ``evolve``: report, keep the new structure as the snapshot, load on with what 4D still sends
  (a removed registry field the mapping needs still fails the extract, as 4D cannot send it);
- ``freeze``: a breaking change fails the table with the diff as its reason, run after run, until
  a person accepts the new structure (the ``legacy_erp_schema_drift`` approval DAG, or
  ``legacy-sync drift --accept TABLE``), or 4D goes back to the structure the sync knows.

4D loads its model per REST session (protocol doc 8.13): a session opened before a change keeps
the old structure. So a run starts with a fresh 4D session (:func:`renew_session`), which also
means what the drift check sees is what the run's reads see.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from legacy_sync import cutover_ledger
from legacy_sync.fourd import FourDClient, FourDError
from legacy_sync.registry import DriftPolicy, LegacyTable

log = logging.getLogger(__name__)

POLICY_ENV = "LEGACY_SYNC_DRIFT_POLICY"
RENEW_SESSION_ENV = "LEGACY_SYNC_RENEW_4D_SESSION"
GLOBAL_STAMP = "__GlobalStamp"
_LENGTH_KEYS = ("length", "maxLength", "size")
"""Attribute keys a 4D version may use for an Alpha field's size (not in the documented catalog)."""


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    BREAKING = "breaking"


@dataclass(frozen=True)
class Catalog:
    """What ``$catalog/<Dataclass>`` says about the data of one table: its storage attributes."""

    exposed: bool
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_4d(cls, attributes: dict[str, dict[str, Any]], exposed: bool = True) -> Catalog:
        """Keep what a change of would matter: type, primary key, scope, length; storage only
        (relations, computed attributes and ``fieldPos``/``indexed`` are not data)."""
        kept: dict[str, dict[str, Any]] = {}
        for name, attribute in attributes.items():
            if attribute.get("kind", "storage") != "storage":
                continue
            entry: dict[str, Any] = {"type": attribute.get("type")}
            if attribute.get("identifying"):
                entry["identifying"] = True
            if attribute.get("scope") not in (None, "public"):
                entry["scope"] = attribute["scope"]
            for key in _LENGTH_KEYS:
                if attribute.get(key) is not None:
                    entry["length"] = attribute[key]
                    break
            kept[name] = entry
        return cls(exposed, kept)

    def as_json(self) -> dict[str, Any]:
        return {"exposed": self.exposed, "attributes": self.attributes}


@dataclass(frozen=True)
class Change:
    """One structure change of one table, in words."""

    attribute: str | None
    change: str
    severity: Severity
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    message: str

    def line(self, table: str) -> str:
        return f"[{self.severity.value}] {table}: {self.message}"


def policy_for(table: LegacyTable) -> DriftPolicy:
    """The table's policy: ``LEGACY_SYNC_DRIFT_POLICY`` (``Table=policy`` pairs, ``*`` for all)
    when it names the table, else the registry's."""
    configured = os.environ.get(POLICY_ENV, "")
    chosen: dict[str, str] = {}
    for part in configured.split(","):
        name, sep, value = part.partition("=")
        if sep:
            chosen[name.strip()] = value.strip().lower()
    wanted = chosen.get(table.name) or chosen.get("*")
    if wanted is None:
        return table.drift_policy
    try:
        return DriftPolicy(wanted)
    except ValueError:
        raise ValueError(
            f"{POLICY_ENV}: {wanted!r} for {table.name} is not a policy (evolve or freeze)"
        ) from None


def _kind(entry: dict[str, Any] | None) -> str:
    return str((entry or {}).get("type"))


def compare(old: Catalog, new: Catalog, table: LegacyTable) -> list[Change]:
    """Every change from ``old`` to ``new`` with its severity (pure)."""
    if old.exposed and not new.exposed:
        return [
            Change(
                None,
                "unexposed",
                Severity.BREAKING,
                {"exposed": True},
                {"exposed": False},
                f"4D no longer exposes {table.name} (absent from $catalog): nothing of it can be read; "
                "ask the 4D developer to tick 'Expose as REST resource' again, or retire the table",
            )
        ]
    if not new.exposed:
        return []
    changes: list[Change] = []
    if not old.exposed:
        changes.append(
            Change(None, "exposed", Severity.INFO, {"exposed": False}, {"exposed": True}, "exposed again")
        )
    read = set(table.attributes)
    names = list(old.attributes) + [n for n in new.attributes if n not in old.attributes]
    for name in names:
        before, after = old.attributes.get(name), new.attributes.get(name)
        is_key = name == table.key
        if before is None and after is not None:
            severity, note = Severity.INFO, "not synced: declare it in the registry if the ERP needs it"
            if name == GLOBAL_STAMP:
                note = "4D change tracking is on: the next runs read change windows"
            changes.append(
                Change(name, "added", severity, None, after, f"new field {name} ({_kind(after)}): {note}")
            )
        elif before is not None and after is None:
            if is_key:
                severity, note = Severity.BREAKING, "the primary key is gone: records cannot be matched"
            elif name in read:
                severity, note = Severity.BREAKING, "the sync reads it: the table cannot load as declared"
            elif name == GLOBAL_STAMP:
                severity, note = Severity.WARNING, "change tracking is off: the sync falls back"
            else:
                severity, note = Severity.INFO, "the sync did not read it"
            changes.append(Change(name, "removed", severity, before, None, f"field {name} removed: {note}"))
        elif before is not None and after is not None and before != after:
            changes.extend(_changed(table, name, before, after, is_key))
    old_key = next((n for n, a in old.attributes.items() if a.get("identifying")), None)
    new_key = next((n for n, a in new.attributes.items() if a.get("identifying")), None)
    if old_key != new_key and not (old_key is not None and old_key not in new.attributes):
        changes.append(
            Change(
                new_key or old_key,
                "key",
                Severity.BREAKING,
                {"key": old_key},
                {"key": new_key},
                f"4D's primary key of {table.name} changed from {old_key or 'none'} to {new_key or 'none'}: "
                f"the registry matches records by {table.key}",
            )
        )
    return changes


def _changed(
    table: LegacyTable, name: str, before: dict[str, Any], after: dict[str, Any], is_key: bool
) -> list[Change]:
    out = []
    if before.get("type") != after.get("type"):
        severity = Severity.BREAKING if is_key else Severity.WARNING
        note = "the key's type changed" if is_key else "values are converted by 4D; check the mapping"
        out.append(
            Change(
                name,
                "retyped",
                severity,
                before,
                after,
                f"field {name} retyped {_kind(before)} -> {_kind(after)}: {note}",
            )
        )
    if before.get("length") != after.get("length"):
        out.append(
            Change(
                name,
                "resized",
                Severity.WARNING,
                before,
                after,
                f"field {name} length {before.get('length')} -> {after.get('length')}",
            )
        )
    if before.get("scope") != after.get("scope"):
        out.append(
            Change(
                name,
                "scope",
                Severity.WARNING,
                before,
                after,
                f"field {name} scope {before.get('scope', 'public')} -> {after.get('scope', 'public')}",
            )
        )
    return out


def diff_text(table: str, changes: Iterable[Change]) -> str:
    return "; ".join(c.line(table) for c in changes)


class DriftBlocked(FourDError):
    """A freeze-policy table whose structure changed in a breaking way: it waits for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def is_unexposed(exc: FourDError, client: FourDClient, table: LegacyTable) -> bool:
    """4D answered 404/1800 for the table and no longer lists it in ``$catalog``."""
    if exc.status != 404 and 1800 not in exc.codes:
        return False
    try:
        return table.name not in client.catalog()
    except FourDError:
        return False


def check_table(conn: Any, run_id: str, table: LegacyTable, client: FourDClient) -> dict[str, dict[str, Any]]:
    """Compare the table's ``$catalog`` with the last snapshot, report each change once, apply
    the policy. Returns 4D's attributes (for the landing step, so ``$catalog`` is read once).

    Raises :class:`DriftBlocked` for a frozen table with a breaking change, and 4D's own error
    (noted as drift) when the table is not exposed.
    """
    try:
        attributes = client.attributes(table.name)
        refused: FourDError | None = None
    except FourDError as exc:
        if not is_unexposed(exc, client, table):
            raise
        attributes, refused = {}, exc
    now = Catalog.from_4d(attributes, exposed=refused is None)
    decide(conn, run_id, table, now)
    if refused is not None:
        raise FourDError(
            f"{table.name}: 4D no longer exposes this table (schema drift): {refused}",
            status=refused.status,
            codes=refused.codes,
        ) from refused
    return attributes


def decide(conn: Any, run_id: str, table: LegacyTable, now: Catalog) -> list[Change]:
    """Report the changes from the snapshot to ``now`` once and apply the table's policy."""
    snapshot = cutover_ledger.read_snapshot(conn, table.name)
    if snapshot is None:
        if now.exposed:  # the first sight of the table is the baseline
            cutover_ledger.save_snapshot(conn, table.name, now.as_json(), run_id)
        return []
    old = Catalog(snapshot["exposed"], snapshot["attributes"])
    policy = policy_for(table)
    changes = compare(old, now, table)
    if not changes:
        if snapshot["pending"]:
            reverted = cutover_ledger.close_pending(conn, table.name, "REVERTED", "4D went back")
            log.info(
                "%s: 4D is back to the structure the sync knows; %d pending change(s) closed",
                table.name,
                reverted,
            )
        return []
    breaking = [c for c in changes if c.severity is Severity.BREAKING]
    if policy is DriftPolicy.FREEZE and breaking:
        new_rows = cutover_ledger.hold_drift(conn, run_id, table.name, policy.value, changes, now.as_json())
        for change in new_rows:
            log.error(
                "schema drift %s (policy freeze: the table waits for approval)", change.line(table.name)
            )
        raise DriftBlocked(
            f"{table.name} is frozen: 4D's structure changed in a breaking way and a person must accept "
            f"it (the legacy_erp_schema_drift approval, or `legacy-sync drift --accept {table.name}`) or "
            f"4D must go back. Changes: {diff_text(table.name, changes)}"
        )
    cutover_ledger.report_drift(conn, run_id, table.name, policy.value, changes, now.as_json())
    for change in changes:
        level = logging.ERROR if change.severity is Severity.BREAKING else logging.WARNING
        log.log(level, "schema drift %s (policy %s)", change.line(table.name), policy.value)
    return changes


def renew_session(conn: Any, run_id: str, client_factory: Callable[[], FourDClient]) -> str | None:
    """Log the shared 4D session out at the start of a run, so this run's session loads 4D's
    current structure (a REST session keeps the model it opened with).

    Skipped while another sync run is reading 4D (its requests would have to log in again), or
    when ``LEGACY_SYNC_RENEW_4D_SESSION`` is ``false`` (a server without ``$directory/logout``
    would then hold a second licence until the old session idles out; drift is then seen only
    when the session is renewed by 4D). Never fails the run: a problem is logged.
    """
    if os.environ.get(RENEW_SESSION_ENV, "true").strip().lower() in ("0", "false", "no", "off"):
        return None
    if cutover_ledger.other_runs_reading(conn, run_id):
        log.info("another sync run is reading 4D: keeping the shared 4D session for now")
        return None
    try:
        with client_factory() as client:
            outcome = client.logout()
    except Exception as exc:  # the extract tasks will say what is wrong with 4D
        log.warning(
            "could not renew the 4D session before the run (%s); structure changes since it "
            "opened stay unseen until it is renewed",
            exc,
        )
        return None
    if outcome:
        log.info("renewed the 4D session so this run sees 4D's current structure (%s)", outcome)
    return outcome


def accept(conn: Any, tables: list[str] | None, decided_by: str) -> dict[str, int]:
    """A person accepts the pending structure of frozen tables: it becomes the snapshot and the
    tables sync again (as far as 4D's new structure allows). Returns {table: changes accepted}."""
    return cutover_ledger.accept_pending(conn, tables, decided_by)
