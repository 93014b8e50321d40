import dagster as dg

from pipelines.catalog.loader import load_catalog
from pipelines.catalog.tables import write_catalog
from pipelines.config import DATA_TEAM_OWNER
from pipelines.resources import KpiwatchResource
from pipelines.warehouse import connect

CATALOG_TABLES = ["settings", "departments", "sources", "kpis", "targets", "standards", "milestones"]
CATALOG_KEYS = [dg.AssetKey(["catalog", t]) for t in CATALOG_TABLES]


@dg.multi_asset(
    name="kpi_catalog",
    group_name="catalog",
    specs=[dg.AssetSpec(k, kinds={"yaml", "duckdb"}, owners=[DATA_TEAM_OWNER],
                        description=f"catalog.{k.path[-1]}: from the YAML catalog")
           for k in CATALOG_KEYS],
)
def kpi_catalog(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource):
    """The KPI catalog (departments, sources, KPIs, targets, standards, milestones), validated against its
    schema and written to the warehouse's `catalog` schema with the run's reporting date."""
    catalog = load_catalog(kpiwatch.catalog_dir)  # fresh read: a run sees the catalog as it is now
    as_of = kpiwatch.reporting_date(context)
    with connect(kpiwatch.warehouse) as con:
        counts = write_catalog(con, catalog, as_of)
    context.log.info(f"catalog {catalog.name!r} as of {as_of}: {counts}")
    counts["settings"] = 1
    for key in CATALOG_KEYS:
        yield dg.MaterializeResult(asset_key=key, metadata={
            "rows": counts[key.path[-1]], "as_of": as_of.isoformat(), "catalog_dir": kpiwatch.catalog_dir})
