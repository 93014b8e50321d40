"""The alerting stage in Dagster: the run-failure sensor routes a failed run to the data
engineers' channel (through the real WebClient and the local Slack Web API server), and the
weekly digest job and schedule."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest

from pipelines.alerting.automation import DIGEST_JOB, digest_job, digest_schedule, run_failure_alerts
from pipelines.config import Settings
from pipelines.resources import KpiwatchResource
from tests.support.slack_server import FakeSlack
from tests.unit.test_alerts_warehouse import build_warehouse

TOKEN = "xoxb-dagster-test-token"


@pytest.fixture
def settings(tmp_path, monkeypatch):
    warehouse = tmp_path / "wh" / "kpiwatch.duckdb"
    warehouse.parent.mkdir()
    build_warehouse(duckdb.connect(str(warehouse))).close()
    for var in ("SLACK_BOT_TOKEN", "KPIWATCH_SLACK_BASE_URL", "KPIWATCH_ALERT_RULES"):
        monkeypatch.delenv(var, raising=False)
    return Settings(warehouse=warehouse, alerts_file=tmp_path / "alerts.jsonl").resolved()


@dg.op
def load_returns():
    raise RuntimeError("source file unreadable: postgresql://kpi:hunter2@db/kpi refused the connection")


@dg.job(name="kpiwatch_all")
def failing_job():
    load_returns()


def test_a_failed_run_is_sent_to_the_data_engineers_once(settings, monkeypatch):
    with FakeSlack(tokens={TOKEN}) as slack, dg.DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("KPIWATCH_SLACK_BASE_URL", slack.base_url)
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        resources = {"kpiwatch": KpiwatchResource.from_settings(settings)}
        for _ in range(2):  # a second evaluation of the same failure tells nobody again
            context = dg.build_run_status_sensor_context(
                sensor_name="kpiwatch_run_failure_alerts", dagster_instance=instance,
                dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event(), resources=resources,
            ).for_run_failure()
            run_failure_alerts(context)
        [message] = slack.messages
    assert message["channel"] == "#data-engineering"  # the route configured in the rules file
    assert message["text"].startswith(f"[CRITICAL] Pipeline run failed: kpiwatch_all: Run {result.run_id[:8]} "
                                      "of kpiwatch_all failed in load_returns: RuntimeError: source file unreadable")
    body = json.dumps(message)
    assert "hunter2" not in body and "postgresql://kpi:***@db/kpi" in body  # no secrets in messages
    assert f"http://127.0.0.1:3000/runs/{result.run_id}|Dagster" in body
    with duckdb.connect(str(settings.warehouse)) as con:
        assert con.execute("select rule, state from alerting.alert_state").fetchall() == [("pipeline_run_failed", "resolved")]


def test_the_weekly_digest_job_delivers_once_per_week(settings):
    resources = {"kpiwatch": KpiwatchResource.from_settings(settings)}
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(2):
            assert digest_job.execute_in_process(instance=instance, resources=resources).success
    lines = [json.loads(line) for line in settings.alerts_path.read_text().splitlines()]
    assert sorted(line["recipient"] for line in lines) == ["#health-kpis", "#kpiwatch-alerts", "C0TRANSPORT", "U0ANN"]
    assert {line["message_type"] for line in lines} == {"digest"}
    assert digest_schedule.cron_schedule == "0 7 * * 1" and digest_schedule.job_name == DIGEST_JOB


def test_definitions_carry_the_digest_schedule_and_the_failure_sensor():
    from pipelines.definitions import build_definitions
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    defs = build_definitions(Settings())
    assert defs.resolve_schedule_def("kpiwatch_weekly_digest").job_name == DIGEST_JOB
    assert defs.resolve_job_def(DIGEST_JOB) is not None
    sensor = defs.resolve_sensor_def("kpiwatch_run_failure_alerts")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
