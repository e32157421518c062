"""What a sync run read and wrote, told to OpenLineage through Airflow's hook lineage collector.

Two asset URI schemes, registered in the provider info (``asset-uris``):

``legacy4d://<host>:<port>/<Dataclass>``
    A dataclass of a 4D server (the dataclass name is case-sensitive, as 4D serves it; the host
    is not). OpenLineage dataset: namespace ``legacy4d://<host>:<port>``, name ``<Dataclass>``,
    with the fields the sync reads as its schema.
``erp-postgres://<host>:<port>/<database>/<schema>/<table>``
    A table of the ERP's PostgreSQL as the sync reports it: the same OpenLineage dataset as the
    ``postgres`` provider's (namespace ``postgres://<host>:<port>``, name
    ``<database>.<schema>.<table>``, so Marquez / DataHub join it with dbt's and others' lineage),
    plus what the sync knows about it: rows written (``outputStatistics``) and the reconciliation
    with 4D (``dataQualityAssertions``). The ``postgres`` converter drops an asset's extra, so the
    sync needs a scheme of its own to carry them.

Who reports what (each a task of the sync DAGs; one task, one process, one collector):

- ``extract_and_land[T]``: the hook, every 4D dataclass it reads records of (input); landing,
  ``legacy_staging.<t>_raw`` with the records landed (output).
- ``transform``: the staging tables it mapped (inputs) and the ``erp`` tables dbt merged (outputs,
  rows created + updated + deleted).
- ``reconcile``: each reconciled ``erp`` table (input) with its assertions.

No cost without a lineage backend: Airflow hands out a collector that records only when a hook
lineage reader is installed (the OpenLineage provider with a transport configured); otherwise, and
outside an Airflow task (the CLI, the benchmark), nothing here does any work.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from legacy_sync.fourd import FourDClient, FourDSettings
from legacy_sync.fourd.auth import SessionStore
from legacy_sync.registry import TABLES_BY_NAME, get_table

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

FOURD_SCHEME = "legacy4d"
ERP_SCHEME = "erp-postgres"
FOURD_DEFAULT_PORTS = {"https": 443, "http": 80}

log = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])

_DATACLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER = re.compile(r"[^/]+")


# -- the legacy4d:// scheme ---------------------------------------------------------------------


def _host_port(uri: SplitResult, scheme: str) -> str:
    """``host:port`` of a URI: host lowercased, user info dropped, the port required."""
    if not uri.hostname:
        raise ValueError(f"a {scheme}:// URI must name a host")
    try:
        port = uri.port
    except ValueError as exc:
        raise ValueError(f"a {scheme}:// URI has an invalid port: {exc}") from None
    if port is None:
        raise ValueError(f"a {scheme}:// URI must name the port ({scheme}://host:port/...)")
    host = uri.hostname  # lowercased by urllib
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def sanitize_fourd_uri(uri: SplitResult) -> SplitResult:
    """``legacy4d://Host:8044/Products/`` -> ``legacy4d://host:8044/Products``.

    The host is lowercased, the port is required (4D servers listen on any port), the path is
    exactly one dataclass name, whose case is kept (4D's names are case-sensitive).
    """
    netloc = _host_port(uri, FOURD_SCHEME)
    dataclass = uri.path.strip("/")
    if not _DATACLASS.fullmatch(dataclass):
        raise ValueError(
            f"a {FOURD_SCHEME}:// URI names one 4D dataclass as its path ({FOURD_SCHEME}://host:port/Products),"
            f" not {uri.path!r}"
        )
    if uri.query:
        raise ValueError(f"a {FOURD_SCHEME}:// URI takes no query ({uri.query!r})")
    return uri._replace(scheme=FOURD_SCHEME, netloc=netloc, path=f"/{dataclass}", query="", fragment="")


def create_fourd_asset(*, host: str, port: int, dataclass: str, extra: dict[str, Any] | None = None) -> Asset:
    """The asset of one 4D dataclass (the collector's factory for ``legacy4d``)."""
    from airflow.sdk import Asset

    uri = urllib.parse.urlunsplit(
        sanitize_fourd_uri(urllib.parse.urlsplit(f"{FOURD_SCHEME}://{host}:{int(port)}/{dataclass}"))
    )
    return Asset(uri=uri, extra=extra or {})


def fourd_to_openlineage(asset: Asset, lineage_context: Any = None) -> Any:
    """OpenLineage dataset of a ``legacy4d`` asset: namespace ``legacy4d://host:port``, name the
    dataclass; the fields the sync reads (with 4D's wire types) as its schema."""
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import datasource_dataset, schema_dataset

    parsed = sanitize_fourd_uri(urllib.parse.urlsplit(asset.uri))
    namespace = f"{FOURD_SCHEME}://{parsed.netloc}"
    dataclass = parsed.path.lstrip("/")
    facets: dict[str, Any] = {
        "dataSource": datasource_dataset.DatasourceDatasetFacet(name=namespace, uri=namespace)
    }
    table = TABLES_BY_NAME.get(dataclass)
    if table is not None:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=table.key, description="primary key"),
                *(
                    schema_dataset.SchemaDatasetFacetFields(name=f.name, type=f.wire.value)
                    for f in table.fields
                ),
            ]
        )
    return _dataset(Dataset(namespace=namespace, name=dataclass, facets=facets), asset.extra)


# -- the erp-postgres:// scheme -----------------------------------------------------------------


def sanitize_erp_uri(uri: SplitResult) -> SplitResult:
    """``erp-postgres://Host:5432/erp/legacy_staging/products_raw``: host lowercased, port
    (default 5432) and ``/<database>/<schema>/<table>`` required, names kept as written."""
    if uri.hostname and uri.port is None:
        uri = uri._replace(netloc=f"{uri.netloc.rstrip(':')}:5432")
    netloc = _host_port(uri, ERP_SCHEME)
    parts = uri.path.split("/")
    if len(parts) != 4 or not all(_IDENTIFIER.fullmatch(p) for p in parts[1:]):
        raise ValueError(
            f"a {ERP_SCHEME}:// URI names a table as /<database>/<schema>/<table>, not {uri.path!r}"
        )
    return uri._replace(scheme=ERP_SCHEME, netloc=netloc, query="", fragment="")


def create_erp_asset(
    *,
    host: str,
    database: str,
    schema: str,
    table: str,
    port: int = 5432,
    extra: dict[str, Any] | None = None,
) -> Asset:
    """The asset of one table of the ERP database (the collector's factory for ``erp-postgres``)."""
    from airflow.sdk import Asset

    quoted = "/".join(urllib.parse.quote(p, safe="") for p in (database, schema, table))
    uri = urllib.parse.urlunsplit(
        sanitize_erp_uri(urllib.parse.urlsplit(f"{ERP_SCHEME}://{host}:{int(port)}/{quoted}"))
    )
    return Asset(uri=uri, extra=extra or {})


def erp_to_openlineage(asset: Asset, lineage_context: Any = None) -> Any:
    """The ``postgres`` provider's naming (namespace ``postgres://host:port``, name
    ``database.schema.table``), with the asset's statistics and assertions as facets."""
    from openlineage.client.event_v2 import Dataset

    parsed = sanitize_erp_uri(urllib.parse.urlsplit(asset.uri))
    database, schema, table = (urllib.parse.unquote(p) for p in parsed.path.split("/")[1:])
    dataset = Dataset(namespace=f"postgres://{parsed.netloc}", name=f"{database}.{schema}.{table}")
    return _dataset(dataset, asset.extra)


def _dataset(dataset: Any, extra: dict[str, Any] | None) -> Any:
    """An output with its statistics (extra ``rowCount``), an input with its assertions (extra
    ``assertions``), else the plain dataset. The converter does not know which side of the task
    an asset is on: what the reporter put in the extra says it."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import data_quality_assertions_dataset, output_statistics_output_dataset

    extra = extra or {}
    common = {"namespace": dataset.namespace, "name": dataset.name, "facets": dataset.facets}
    if extra.get("rowCount") is not None:
        return OutputDataset(
            **common,
            outputFacets={
                "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=int(extra["rowCount"])
                )
            },
        )
    if extra.get("assertions"):
        assertions = [
            data_quality_assertions_dataset.Assertion(
                assertion=str(a["assertion"]),
                success=bool(a["success"]),
                name=a.get("name"),
                description=a.get("description"),
                expected=None if a.get("expected") is None else str(a["expected"]),
                actual=None if a.get("actual") is None else str(a["actual"]),
                severity=a.get("severity"),
            )
            for a in extra["assertions"]
        ]
        return InputDataset(
            **common,
            inputFacets={
                "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=assertions
                )
            },
        )
    return dataset


# -- reporting ----------------------------------------------------------------------------------


def collector() -> Any | None:
    """Airflow's hook lineage collector when something reads it, else None.

    Outside Airflow (nothing imported ``airflow.sdk``: the CLI, the benchmark) there is nobody to
    tell; inside, Airflow's collector is a no-op unless a hook lineage reader is installed.
    """
    if "airflow.sdk" not in sys.modules:
        return None
    from airflow.sdk.lineage import NoOpCollector, get_hook_lineage_collector

    found = get_hook_lineage_collector()
    return None if isinstance(found, NoOpCollector) else found


def fourd_endpoint(base_url: str) -> tuple[str, int]:
    """(host, port) of a 4D server's base URL; the scheme's port when it names none."""
    parts = urllib.parse.urlsplit(base_url)
    return parts.hostname or "localhost", parts.port or FOURD_DEFAULT_PORTS.get(parts.scheme, 443)


def fourd_read_reporter(context: Any, base_url: str) -> Callable[[str], None] | None:
    """``report(dataclass)`` for a hook's client (context: the hook), or None without a backend."""
    found = collector()
    if found is None:
        return None
    host, port = fourd_endpoint(base_url)
    seen: set[str] = set()

    def report(dataclass: str) -> None:
        if dataclass.startswith("__") or dataclass in seen:  # 4D's system tables (__DeletedRecords)
            return
        seen.add(dataclass)
        found.add_input_asset(
            context=context,
            scheme=FOURD_SCHEME,
            asset_kwargs={"host": host, "port": port, "dataclass": dataclass},
        )

    return report


class ReportingFourDClient(FourDClient):
    """A :class:`FourDClient` that reports each dataclass it reads records of (keyset pages, records
    by key) as a lineage input. Probes (``$catalog``, counts, the run's window) are not reads of
    data and are not reported."""

    def __init__(
        self, settings: FourDSettings, store: SessionStore | None, report: Callable[[str], None]
    ) -> None:
        super().__init__(settings, store=store)
        self._report = report

    def iter_by_key(self, dataclass: str, key: str, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        self._report(dataclass)
        yield from super().iter_by_key(dataclass, key, **kwargs)

    def get_records(self, dataclass: str, key: str, keys: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        self._report(dataclass)
        yield from super().get_records(dataclass, key, keys, **kwargs)


@dataclass(frozen=True)
class ErpDatabase:
    """Where the ERP database is, as lineage names it (the collector's context for its tables)."""

    host: str
    port: int
    database: str

    @classmethod
    def from_conninfo(cls, conninfo: str) -> ErpDatabase:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        host = str(params.get("host") or "localhost").split(",")[0]
        if host.startswith("/"):  # a unix socket: this machine
            host = "localhost"
        port = int(str(params.get("port") or 5432).split(",")[0])
        return cls(host, port, str(params.get("dbname") or "postgres"))

    def table(self, schema: str, table: str) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "schema": schema,
            "table": table,
        }


def _never_fails(report: _F) -> _F:
    """Lineage is a by-product: a problem reporting it is logged, never fails the sync."""

    @functools.wraps(report)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return report(*args, **kwargs)
        except Exception as exc:
            log.warning("lineage not reported (%s): %s: %s", report.__name__, type(exc).__name__, exc)
            return None

    return wrapper  # type: ignore[return-value]


def _add(found: Any, side: str, erp: ErpDatabase, schema: str, table: str, extra: dict[str, Any]) -> None:
    add = found.add_output_asset if side == "output" else found.add_input_asset
    add(context=erp, scheme=ERP_SCHEME, asset_kwargs=erp.table(schema, table), asset_extra=extra or None)


@_never_fails
def report_landing(conninfo: str, table: str, records_landed: int) -> None:
    """extract_and_land: the staging table written, with the records landed."""
    found = collector()
    if found is None:
        return
    erp = ErpDatabase.from_conninfo(conninfo)
    _add(found, "output", erp, "legacy_staging", get_table(table).raw_table, {"rowCount": records_landed})


@_never_fails
def report_transform(
    conn: psycopg.Connection[Any], conninfo: str, run_id: str, merged: dict[str, bool]
) -> None:
    """transform: the staging tables it mapped; the erp tables dbt merged, with the rows written
    (created + updated + deleted, from the sync log; ``categories`` with Products)."""
    found = collector()
    if found is None:
        return
    erp = ErpDatabase.from_conninfo(conninfo)
    for name in merged:
        _add(found, "input", erp, "legacy_staging", get_table(name).raw_table, {})
    written = _rows_written(conn, run_id, [name for name, done in merged.items() if done])
    for relation, rows in written.items():
        _add(found, "output", erp, "erp", relation, {"rowCount": rows})


def _rows_written(conn: psycopg.Connection[Any], run_id: str, tables: list[str]) -> dict[str, int]:
    """{erp table: rows this run created, updated or deleted} of the merged tables."""
    from legacy_sync import ledger

    written: dict[str, int] = {}
    for change in ledger.run_changes(conn, run_id):
        if change.table in tables:
            written[get_table(change.table).snake_name] = change.written
            if change.table == "Products":
                written["categories"] = change.categories_created
    return written


@_never_fails
def report_reconciliation(conn: psycopg.Connection[Any], conninfo: str, run_id: str) -> None:
    """reconcile: each reconciled erp table as an input with two assertions -- nothing read in this
    run was lost, and 4D's count equals the live erp rows plus the open rejects."""
    found = collector()
    if found is None:
        return
    from legacy_sync import ledger

    erp = ErpDatabase.from_conninfo(conninfo)
    for result in ledger.run_reconciliations(conn, run_id):
        name, missing, reconciled, source, message = (
            result.table,
            result.missing,
            result.reconciled,
            result.source_count,
            result.message,
        )
        table = get_table(name)
        assertions: list[dict[str, Any]] = [
            {
                "assertion": "no_records_lost",
                "name": f"{table.snake_name}_no_records_lost",
                "description": "every record read from 4D in this run is live in erp or rejected",
                "success": not missing,
                "expected": 0,
                "actual": int(missing or 0),
                "severity": "error",
            }
        ]
        if reconciled:
            live, rejected = ledger.erp_totals(conn, table)
            assertions.append(
                {
                    "assertion": "row_count",
                    "name": f"{table.snake_name}_matches_4d_count",
                    "description": f"4D's count of {table.name} = live erp rows + open rejects ({message})",
                    "success": source == live + rejected,
                    "expected": source,
                    "actual": live + rejected,
                    "severity": "warn",  # 4D changes while we count: a full sync settles it
                }
            )
        _add(found, "input", erp, "erp", table.snake_name, {"assertions": assertions})
