from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

# dbt sources are the landing and catalog tables, each written by one kpiwatch asset.
SOURCE_ASSETS = {"catalog": dg.AssetKey("kpi_catalog"), "raw": dg.AssetKey("landed_observations"),
                 "quality": dg.AssetKey("landed_observations")}


class KpiwatchTranslator(DagsterDbtTranslator):
    """Groups dbt models by their folder (staging / intermediate / marts) and maps dbt sources
    to the kpiwatch assets that write them — by rule, never by model name."""

    def __init__(self):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return SOURCE_ASSETS.get(dbt_resource_props["source_name"], super().get_asset_key(dbt_resource_props))
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "transform"
