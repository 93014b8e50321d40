"""A council's corporate return through the real graph (dagster materialize: ingest with GX,
dbt build, drift, publication, alerts): one shared source feeding two departments that have no
Slack channel, KPI codes as written, an `N/A` cell in a four-row file, a negative indicator.
Publication stays per department: a second return whose rows for one department are mostly
rejected blocks that department only."""
import json
import os

import dagster as dg
import pytest

from pipelines.config import Settings
from pipelines.warehouse import connect
from tests.support.catalogs import kpi, write_catalog

pytestmark = [pytest.mark.slow, pytest.mark.clock]

HEADER = "Service,Code,Measure,Period,Actual\n"


def _council(tmp_path) -> Settings:
    source = {"id": "corporate", "kind": "csv", "path": "in/*.csv", "cadence": "monthly", "lag_days": 14,
              "missing_markers": ["N/A"], "columns": {"kpi_id": "Code", "period": "Period", "value": "Actual"}}
    kpis = [kpi("calls_answered", "corporate", "customer_services", code="CS01"),
            kpi("days_behind", "corporate", "planning", code="PL01", allow_negative=True, unit="days",
                direction="lower_is_better", owner={"name": "Planner"},  # no Slack id either
                baseline={"value": 0, "date": "2025-12-31"}, targets=[{"value": -30, "due": "2026-12-31"}])]
    departments = [{"id": "customer_services", "name": "Customer services"}, {"id": "planning", "name": "Planning"}]
    catalog = write_catalog(tmp_path / "catalog", [source], kpis, as_of="2026-11-20", departments=departments)
    (tmp_path / "data" / "in").mkdir(parents=True)
    return Settings(catalog_dir=catalog, data_dir=tmp_path / "data", warehouse=tmp_path / "w.duckdb",
                    alerts_file=tmp_path / "alerts.jsonl").resolved()


def _run(settings, instance):
    from pipelines.definitions import build_definitions

    defs = build_definitions(settings)
    result = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance, raise_on_error=False)
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert not failed, failed
    return result


def test_corporate_return_publishes_per_department(tmp_path):
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    settings = _council(tmp_path)
    data = settings.data_dir / "in"
    (data / "2026-09.csv").write_text(HEADER + "Customers,CS01,Calls answered,2026-09,N/A\n"
                                               "Customers,CS01,Calls answered,2026-10,812\n"
                                               "Planning,PL01,Days behind,2026-09,-20\n"
                                               "Planning,PL01,Days behind,2026-10,-28\n")
    saved = dict(os.environ)
    os.environ.update(settings.export())
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            _run(settings, instance)
            with connect(settings.warehouse, read_only=True) as con:
                decisions = con.execute("select department_id, published from publish.decisions").fetchall()
                quarantined = con.execute("select department_id, reason from raw.quarantine").fetchall()
                schemas = con.execute("select verdict from quality.batch_schemas").fetchall()
                figures = con.execute("select department_id, kpi_id, actual from publish.kpi_status order by 2").fetchall()
            assert sorted(decisions) == [("customer_services", True), ("planning", True)]
            assert quarantined == [("customer_services", "missing_value")]
            assert schemas == [("baseline",)]
            assert figures == [("customer_services", "calls_answered", 812.0), ("planning", "days_behind", -28.0)]

            # November: three of customer services' four rows missing -- over 25% and at least 3 rows
            (data / "2026-11.csv").write_text(HEADER + "".join(f"Customers,CS01,Calls,2026-0{m},N/A\n" for m in (6, 7, 8))
                                              + "Customers,CS01,Calls,2026-11,800\n"
                                              + "Planning,PL01,Days behind,2026-11,-31\n")
            _run(settings, instance)
            with connect(settings.warehouse, read_only=True) as con:
                decisions = dict(con.execute(
                    "select department_id, published from publish.decisions where run_id = "
                    "(select run_id from publish.decisions order by decided_at desc limit 1)").fetchall())
                status = dict(con.execute("select kpi_id, data_trust from publish.kpi_status").fetchall())
                scorecard = dict(con.execute(
                    "select department_id, source_overdue from marts.fct_department_scorecard").fetchall())
                log = con.execute("select channel from alerting.alert_log").fetchall()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert decisions == {"customer_services": False, "planning": True}
    assert status == {"calls_answered": "stale", "days_behind": "trusted"}
    assert scorecard == {"customer_services": False, "planning": False}
    # Departments without a Slack channel: alerts reach the console and the alert file, routed to
    # the KPI owner's Slack id when there is one, else the fallback channel -- never to None.
    alerts = [json.loads(line) for line in settings.alerts_path.read_text().splitlines()]
    assert alerts and all(a.get("channel") for a in alerts)
    assert {c for (c,) in log} <= {"U0OWNER", "#kpiwatch-alerts"}
    failed = [a for a in alerts if "Data checks failed: corporate" in json.dumps(a)]
    assert failed and {a["channel"] for a in failed} == {"#kpiwatch-alerts"}
    assert "shared: Customer services, Planning" in json.dumps(failed[0])
