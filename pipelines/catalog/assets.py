import dagster as dg

from pipelines.catalog.loader import load_catalog
from pipelines.catalog.tables import write_catalog
from pipelines.resources import KpiwatchResource
from pipelines.warehouse import connect


@dg.asset(group_name="catalog", kinds={"yaml", "duckdb"})
def kpi_catalog(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource) -> dg.MaterializeResult:
    """The KPI catalog (departments, sources, KPIs, targets, milestones), validated against its
    schema and written to the warehouse's `catalog` schema with the run's reporting date."""
    catalog = load_catalog(kpiwatch.catalog_dir)  # fresh read: a run sees the catalog as it is now
    as_of = kpiwatch.reporting_date()
    with connect(kpiwatch.warehouse) as con:
        counts = write_catalog(con, catalog, as_of)
    context.log.info(f"catalog {catalog.name!r} as of {as_of}: {counts}")
    return dg.MaterializeResult(metadata={**counts, "as_of": as_of.isoformat(), "catalog_dir": kpiwatch.catalog_dir})
