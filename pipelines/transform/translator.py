from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from pipelines.config import DATA_TEAM_OWNER

class KpiwatchTranslator(DagsterDbtTranslator):
    """Groups dbt models by their folder (staging / intermediate / marts), by rule, never by
    model name. dbt sources keep their default keys (`catalog/kpis`, `raw/observations`, ...),
    which are the keys of the kpiwatch assets that write those tables."""

    def __init__(self):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey(dbt_resource_props["name"])

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        return [DATA_TEAM_OWNER]

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "transform"
