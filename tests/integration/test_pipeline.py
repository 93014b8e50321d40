"""The real asset graph, materialized on the demo in tmp_path with real dbt, GX and DuckDB, and
alerts delivered through slack-sdk's WebClient to a local server speaking the Slack Web API.
The same runs and the same planted-story assertions on the Postgres warehouse target (a fresh
database on this machine's PostgreSQL)."""
import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.config import Settings
from pipelines.demo import write_demo
from pipelines.warehouse import connect
from tests.support.pg import fresh_database, pg_env
from tests.support.slack_server import FakeSlack

pytestmark = pytest.mark.slow
TOKEN = "xoxb-kpiwatch-test-token"


def materialize_all(settings: Settings, instance) -> dg.ExecuteInProcessResult:
    from pipelines.definitions import build_definitions

    defs = build_definitions(settings)
    return dg.materialize(
        list(defs.assets), resources=defs.resources, instance=instance, raise_on_error=False
    )


def rows(wh, sql, params=None):
    with connect(wh, read_only=True) as con:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def runs(request, tmp_path_factory):
    """Two consecutive runs of the whole graph on the same warehouse and data, on each target.
    On postgres the warehouse is a fresh database; the DuckDB path only places local files."""
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    base = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    data = base / "data"
    write_demo(data)
    settings = Settings(data_dir=data, warehouse=base / "wh" / "kpiwatch.duckdb", target=request.param).resolved()
    saved = dict(os.environ)
    with contextlib.ExitStack() as stack:
        target_env = {}
        if request.param == "postgres":
            target_env = pg_env(stack.enter_context(fresh_database("kpiwatch_pipeline")))
        slack = stack.enter_context(FakeSlack(tokens={TOKEN}))
        os.environ.update(settings.export())
        os.environ.update(target_env)
        os.environ["SLACK_BOT_TOKEN"] = TOKEN
        os.environ["KPIWATCH_SLACK_BASE_URL"] = slack.base_url
        try:
            with dg.DagsterInstance.ephemeral() as instance:
                first = materialize_all(settings, instance)
                messages_after_first = list(slack.messages)
                second = materialize_all(settings, instance)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        os.environ.update(target_env)  # the assertions read the same warehouse
        try:
            yield {"settings": settings, "wh": settings.warehouse, "first": first, "second": second,
                   "slack_first": messages_after_first, "slack_all": list(slack.messages),
                   "requests": list(slack.requests), "target": request.param}
        finally:
            os.environ.clear()
            os.environ.update(saved)


def test_postgres_runs_leave_no_duckdb_file(runs):
    """On the postgres target every table is in Postgres: no DuckDB warehouse file appears."""
    assert runs["settings"].warehouse.exists() == (runs["target"] == "duckdb")
    with connect(runs["wh"], read_only=True) as con:
        assert type(con).__name__ == ("PgConnection" if runs["target"] == "postgres" else "DuckDBPyConnection")


def latest_status(wh):
    return {r["kpi_id"]: r for r in rows(wh, "select * from marts.fct_kpi_progress where is_latest")}


def test_both_runs_succeed(runs):
    for result in (runs["first"], runs["second"]):
        failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, failed


def test_planted_statuses(runs):
    st = latest_status(runs["wh"])
    assert len(st) == 13
    assert st["ae_four_hour"]["status"] == "green"
    assert st["claimant_count"]["status"] == "amber"
    assert st["claimant_count"]["previous_status"] == "green"  # turned amber this period
    assert st["rtt_18_weeks"]["status"] == "red"
    assert st["ae_four_hour"]["expected_value"] == pytest.approx(72 + 6 * (1127 / 1278), abs=0.01)
    # Ratio KPIs are recomputed from numerator and denominator, never averaged.
    [num] = rows(runs["wh"], """select 100 * sum(numerator) / sum(denominator) as v from raw.observations
                               where kpi_id = 'ae_four_hour' and period = date '2026-10-01'""")
    assert st["ae_four_hour"]["actual"] == pytest.approx(num["v"])


def test_planted_milestones(runs):
    ms = {r["milestone_id"]: r["state"] for r in rows(runs["wh"], "select * from marts.fct_milestones")}
    assert ms["cancer_75_by_jun_2026"] == "missed"
    assert ms["bus_88_by_mar_2027"] == "at_risk"
    assert ms["ae_76_by_sep_2026"] == "met"
    assert ms["step_free_50_stations"] == "met"  # manual completion record


def test_overdue_department_is_stale_and_others_trusted(runs):
    fresh = {r["source_id"]: r for r in rows(runs["wh"], "select * from marts.fct_source_freshness")}
    assert fresh["transport_db"]["is_overdue"] and fresh["transport_db"]["periods_overdue"] == 2
    assert not fresh["health_returns"]["is_overdue"] and not fresh["employment_return"]["is_overdue"]
    st = latest_status(runs["wh"])
    assert {k: v["data_trust"] for k, v in st.items() if v["department_id"] == "transport"} == {
        "bus_punctuality": "stale", "passenger_journeys": "stale", "road_casualties_ksi": "stale",
        "step_free_stations": "stale"}
    assert all(v["data_trust"] == "trusted" for v in st.values() if v["department_id"] != "transport")


def test_bad_rows_quarantined_and_counted(runs):
    q = rows(runs["wh"], "select reason, count(*) n from raw.quarantine group by 1 order by 1")
    assert {r["reason"]: r["n"] for r in q} == {
        "duplicate_key": 2, "negative_value": 1, "unknown_kpi_id": 1, "unparseable_number": 1}
    [acc] = rows(runs["wh"], "select sum(rows_in) i, sum(rows_accepted) a, sum(rows_quarantined) q from raw.batches")
    [obs] = rows(runs["wh"], "select count(*) n from raw.observations")
    assert acc["i"] == acc["a"] + acc["q"] == 957 and obs["n"] == acc["a"]


def test_sudden_jump_only(runs):
    flagged = rows(runs["wh"], "select kpi_id from marts.fct_kpi_anomalies where is_anomaly")
    assert [r["kpi_id"] for r in flagged] == ["job_placements"]


def test_gx_checks_are_asset_checks(runs):
    evals = {(e.asset_key.to_user_string(), e.check_name): e.passed
             for e in runs["first"].get_asset_check_evaluations()}
    assert evals[("ingest/health_returns", "key_unique")] is False
    assert evals[("ingest/health_returns", "kpi_id_known")] is False
    assert evals[("ingest/employment_return", "key_unique")] is True
    assert evals[("raw/observations", "rows_accounted")] is True
    stored = rows(runs["wh"], "select count(*) n from quality.check_results where not success and source_id = 'health_returns'")
    assert stored[0]["n"] == 4


def test_alerts_delivered_to_slack(runs):
    msgs = runs["slack_first"]
    by_channel = {}
    for m in msgs:
        by_channel.setdefault(m["channel"], []).append(m)
    # Grouping: each recipient gets exactly one message per run, listing all of its alerts.
    assert {channel: len(m) for channel, m in by_channel.items()} == {channel: 1 for channel in by_channel}
    # Every firing alert is in exactly one message (its fingerprint is in the message).
    firing = {r["fingerprint"] for r in rows(runs["wh"], "select fingerprint from alerting.alert_state where state = 'firing'")}
    shown = [fp for m in msgs for fp in re.findall(r"fingerprint `([0-9a-f]{16})`", json.dumps(m["blocks"]))]
    assert sorted(shown) == sorted(firing) and len(firing) >= 6
    # The red KPI and the missed milestone go to their owner, in one Block Kit message with a
    # plain-text fallback naming both.
    [owen] = by_channel["U0OWENH"]
    assert owen["blocks"][0]["type"] == "header" and owen["blocks"][0]["text"]["text"].startswith(":bell: ")
    assert "Patients waiting under 18 weeks for treatment is red" in owen["text"]
    assert "Milestone missed: Cancer 62-day standard reaches 75%" in owen["text"]
    [transport] = by_channel["#transport-kpis"]
    assert "Source overdue: transport_db" in transport["text"]  # overdue source -> department
    [marcus] = by_channel["U0MARCUSW"]
    assert "Sudden jump: Job placements made" in marcus["text"] and "Unemployment benefit claimants is amber" in marcus["text"]
    auth = {r.headers.get("authorization") for r in runs["requests"] if r.path.endswith("chat.postMessage")}
    assert auth == {f"Bearer {TOKEN}"}
    log = rows(runs["wh"], "select rule, outcome, detail, payload from alerting.alert_log")
    assert {r["rule"] for r in log} >= {"kpi_off_trajectory", "milestone_off_track", "source_overdue", "sudden_jump"}
    assert {r["outcome"] for r in log} == {"sent"}
    outbox = rows(runs["wh"], "select status, count(*) n from alerting.outbox group by 1")
    assert outbox == [{"status": "sent", "n": len(msgs)}]
    assert TOKEN not in json.dumps(log, default=str)


def test_second_run_lands_nothing_and_sends_nothing(runs):
    second_id = runs["second"].run_id
    assert rows(runs["wh"], "select count(*) n from raw.batches where run_id = ?", [second_id])[0]["n"] == 0
    assert rows(runs["wh"], "select count(*) n from alerting.alert_log where run_id = ?", [second_id])[0]["n"] == 0
    assert runs["slack_all"] == runs["slack_first"]
    assert runs["first"].run_id != second_id


def test_cli_run_and_status(tmp_path):
    """`kpiwatch demo`, `run` and `status --format json` as a user runs them (console + JSONL alerts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_", "DAGSTER_HOME"))}
    exe = str(Path(sys.executable).parent / "kpiwatch")
    data, wh = tmp_path / "data", tmp_path / "wh" / "kpiwatch.duckdb"
    subprocess.run([exe, "demo", "--data-dir", str(data)], env=env, check=True, capture_output=True)
    run = subprocess.run([exe, "run", "--data-dir", str(data), "--warehouse", str(wh)], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = run.stdout
    for needle in ("rtt_18_weeks", "claimant_count", "missed cancer_75_by_jun_2026", "at_risk bus_88_by_mar_2027",
                   "overdue source transport_db", "sudden jump job_placements", "quarantined 2 × duplicate_key",
                   "unparseable_number", "Alerts this run:"):
        assert needle in text, needle
    assert "Traceback" not in text + run.stderr
    alerts = [json.loads(line) for line in (wh.parent / "alerts.jsonl").read_text().splitlines()]
    assert alerts and all("fingerprint" in a for a in alerts)
    status = subprocess.run([exe, "status", "--warehouse", str(wh), "--format", "json"], env=env,
                            capture_output=True, text=True, check=True)
    doc = json.loads(status.stdout)
    by_id = {k["kpi_id"]: k for k in doc["kpis"]}
    assert by_id["rtt_18_weeks"]["status"] == "red" and by_id["bus_punctuality"]["data_trust"] == "stale"
