"""The Dagster code location loads with every asset, check, schedule and sensor."""
import shutil

import dagster as dg
import pytest

from pipelines.config import Settings


@pytest.fixture(scope="module")
def defs():
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    from pipelines.definitions import build_definitions

    return build_definitions(Settings())


def test_workspace_module_loads(defs):
    # The module workspace.yaml loads (the `defs` fixture has prepared the dbt manifest).
    from pipelines.definitions import defs as module_defs

    assert isinstance(module_defs, dg.Definitions)


def test_every_stage_has_its_assets(defs):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"catalog/{t}" for t in ("settings", "departments", "sources", "kpis", "targets", "milestones")} <= keys
    assert {"ingest/health_returns", "ingest/employment_return", "ingest/transport_db"} <= keys
    assert {"raw/observations", "raw/batches", "raw/quarantine", "quality/check_results"} <= keys
    assert {"fct_kpi_progress", "fct_milestones", "fct_department_scorecard", "fct_source_freshness",
            "fct_kpi_anomalies", "dim_kpis", "kpi_alerts"} <= keys
    groups = {graph.get(dg.AssetKey.from_user_string(k)).group_name for k in keys}
    assert groups == {"catalog", "ingest", "staging", "intermediate", "marts", "alerting", "reporting"}
    # Every asset is described (its docstring or dbt description is what the UI shows).
    assert all(graph.get(k).description for k in graph.get_all_asset_keys() if not k.path[0].startswith("stg_"))


def test_every_check_is_listed(defs):
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for source in ("health_returns", "employment_return", "transport_db"):
        for name in ("columns_present", "values_parseable", "kpi_id_known", "key_unique",
                     "period_not_in_future", "value_non_negative", "rejection_rate"):
            assert (f"ingest/{source}", name) in checks
    assert ("raw/observations", "rows_accounted") in checks
    # dbt tests arrive as asset checks on the models.
    assert any(a == "fct_kpi_progress" for a, _ in checks)
    assert len(checks) > 100


def test_schedule_and_sensor(defs):
    job = defs.resolve_job_def("kpiwatch_all")
    assert job is not None
    assert defs.resolve_schedule_def("kpiwatch_daily").cron_schedule == "0 6 * * *"
    assert defs.resolve_sensor_def("new_source_files") is not None


def test_sensor_requests_a_run_for_a_new_file(tmp_path, demo_data):
    from pipelines.definitions import build_definitions
    from pipelines.resources import KpiwatchResource

    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    settings = Settings(data_dir=data, warehouse=tmp_path / "w.duckdb").resolved()
    sensor = build_definitions(settings).resolve_sensor_def("new_source_files")
    resources = {"kpiwatch": KpiwatchResource.from_settings(settings)}
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        first = sensor(ctx)
        assert isinstance(first, dg.RunRequest)
        ctx2 = dg.build_sensor_context(instance=instance, resources=resources, cursor=ctx.cursor)
        assert isinstance(sensor(ctx2), dg.SkipReason)
        (data / "health" / "returns_2026-11.csv").write_text("kpi_code,month,provider,value,numerator,denominator\n")
        ctx3 = dg.build_sensor_context(instance=instance, resources=resources, cursor=ctx.cursor)
        new = sensor(ctx3)
        assert isinstance(new, dg.RunRequest) and "returns_2026-11.csv" in new.run_key
