import os

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipelines.resources import KpiwatchResource
from pipelines.transform.project import MANIFEST, prepare_manifest
from pipelines.transform.translator import KpiwatchTranslator


if os.environ.get("DAGSTER_IS_DEV_CLI"):
    # Under `dagster dev` only (like DbtProject.prepare_if_dev): build a missing or stale manifest
    # so the UI loads on a fresh clone. Runs and tests prepare it explicitly beforehand.
    prepare_manifest()


def dbt_build_args() -> list[str]:
    # The reporting date reaches dbt through catalog.settings (written by kpi_catalog), not
    # through --vars: one source of truth, and the unit tests run under the same vars as a run.
    # Unit tests check the SQL, not the data: CI runs them (tests/integration/test_dbt_models.py);
    # a run skips them (21 of them took 8 s of every run, demo or 10M; docs/scale.md).
    return ["build", "--exclude-resource-type", "unit_test"]


@dbt_assets(manifest=MANIFEST, dagster_dbt_translator=KpiwatchTranslator())
def kpiwatch_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, kpiwatch: KpiwatchResource):
    """dbt models: staging → intermediate → marts (progress, milestones, freshness, anomalies,
    scorecard). dbt tests arrive as asset checks."""
    # dbt reads the warehouse path from the environment (profiles.yml uses env_var).
    os.environ.update(kpiwatch.settings().export())
    yield from dbt.cli(dbt_build_args(), context=context).stream()
