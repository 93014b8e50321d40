"""The kpiwatch Dagster code location: assembles each stage's definitions, nothing more."""
from __future__ import annotations

import dagster as dg

from pipelines.config import DBT_PROJECT_DIR, Settings

ALL_ASSETS_JOB = "kpiwatch_all"


def build_definitions(settings: Settings | None = None, loggers: dict | None = None) -> dg.Definitions:
    """All of kpiwatch's definitions for a catalog; `loggers` lets the CLI show its own progress."""
    from dagster_dbt import DbtCliResource

    from pipelines.alerting.assets import kpi_alerts
    from pipelines.alerting.automation import digest_job, digest_schedule, run_failure_alerts
    from pipelines.catalog.assets import kpi_catalog
    from pipelines.ingest.assets import build_drop_folder_sensor, build_ingest_asset, build_landing_asset
    from pipelines.ledger import run_ledger
    from pipelines.quality.assets import build_publish_asset, drift_findings
    from pipelines.reporting.assets import audit_report, scorecard
    from pipelines.resources import KpiwatchResource, _load
    from pipelines.transform.assets import kpiwatch_dbt_models
    from pipelines.transform.project import dbt_executable

    settings = (settings or Settings.from_env()).resolved()
    catalog = _load(str(settings.catalog_dir))
    ingest = [build_ingest_asset(sid, src, {d: catalog.departments.get(d, {}) for d in catalog.source_departments(sid)})
              for sid, src in sorted(catalog.sources.items())]
    job = dg.define_asset_job(ALL_ASSETS_JOB, selection=dg.AssetSelection.all(),
                              description="The whole kpiwatch graph: catalog → ingest → dbt → drift → publish → alerts → reports.")
    return dg.Definitions(
        assets=[kpi_catalog, *ingest, build_landing_asset([a.key for a in ingest]), kpiwatch_dbt_models,
                drift_findings, build_publish_asset(), kpi_alerts, scorecard, audit_report, run_ledger],
        jobs=[job, digest_job],
        schedules=[dg.ScheduleDefinition(name="kpiwatch_daily", job=job, cron_schedule="0 6 * * *",
                                         execution_timezone="UTC",
                                         description="Daily full run at 06:00 UTC."), digest_schedule],
        sensors=[build_drop_folder_sensor(catalog, ALL_ASSETS_JOB), run_failure_alerts],
        resources={
            "kpiwatch": KpiwatchResource.from_settings(settings),
            "dbt": DbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                                  target=settings.target, dbt_executable=dbt_executable()),
        },
        # DuckDB allows one writer process: run steps one after another in the run's process
        # (on Postgres too: the steps form one chain, and one executor serves both targets).
        executor=dg.in_process_executor,
        loggers=loggers,
    )


defs = build_definitions()
