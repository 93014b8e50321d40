import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipelines.resources import KpiwatchResource
from pipelines.transform.project import MANIFEST
from pipelines.transform.translator import KpiwatchTranslator


def dbt_build_args(as_of: str) -> list[str]:
    return ["build", "--vars", json.dumps({"as_of_date": as_of})]


@dbt_assets(manifest=MANIFEST, dagster_dbt_translator=KpiwatchTranslator())
def kpiwatch_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, kpiwatch: KpiwatchResource):
    """dbt models: staging → intermediate → marts (progress, milestones, freshness, anomalies,
    scorecard). dbt tests arrive as asset checks."""
    import os

    # dbt reads the warehouse path from the environment (profiles.yml uses env_var).
    os.environ.update(kpiwatch.settings().export())
    yield from dbt.cli(dbt_build_args(kpiwatch.reporting_date().isoformat()), context=context).stream()
