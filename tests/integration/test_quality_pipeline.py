"""Contracts, drift, data trust, publication and history on the real asset graph (real dbt, GX,
DuckDB): run 1 is the demo as shipped, run 2 adds a health file with a schema change (critical:
health's publication is blocked) and an employment workbook with a planted outlier (a warning:
employment still publishes). See tests/support/quality_runs.py."""
import csv
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.warehouse import connect
from tests.support.quality_runs import NOVEMBER_CLAIMANTS, quality_runs

pytestmark = [pytest.mark.slow, pytest.mark.clock]  # clock: also run with the clock moved (make test-clock)
OCT, NOV = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
HEALTH = {"ae_four_hour", "ambulance_cat2_minutes", "cancer_62_day", "delayed_discharges", "rtt_18_weeks"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return quality_runs(tmp_path_factory)


def rows(wh, sql, params=None):
    with connect(wh, read_only=True) as con:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_"))}
    return subprocess.run([str(Path(sys.executable).parent / "kpiwatch"), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_both_runs_succeed(runs):
    for result in (runs["first"], runs["second"]):
        assert result.success, [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def test_clean_demo_raises_only_the_planted_findings(runs):
    found = rows(runs["wh"], """select kind, severity, coalesce(kpi_id, source_id) as subject, period
                               from quality.drift_findings where run_id = ? order by kind, subject, period""",
                 [runs["first"].run_id])
    assert [(f["kind"], f["severity"], f["subject"], f["period"]) for f in found] == [
        ("kpi_outlier", "critical", "job_placements", OCT),              # the planted sudden jump
        ("missing_submission", "warning", "transport_db", dt.date(2026, 9, 1)),  # the overdue department
        ("missing_submission", "info", "transport_db", OCT),             # ... October is within its grace period
        ("volume", "warning", "ambulance_cat2_minutes", OCT),            # 2 of 4 providers left after the bad rows
    ]
    [jump] = rows(runs["wh"], "select * from quality.drift_findings where kind = 'kpi_outlier' and run_id = ?",
                  [runs["first"].run_id])
    assert jump["observed"] == pytest.approx(5342) and 2000 < jump["expected"] < 2100 and jump["is_latest"]


def test_every_department_published_in_run1_with_trust_beside_status(runs):
    first = runs["first"].run_id
    decisions = rows(runs["wh"], "select department_id, published from publish.decisions where run_id = ?", [first])
    assert {d["department_id"]: d["published"] for d in decisions} == {"employment": True, "health": True, "transport": True}
    figures = {f["kpi_id"]: f for f in rows(runs["wh"], "select * from publish.kpi_figures where run_id = ?", [first])}
    assert len(figures) == 13
    trust = {k: f["data_trust"] for k, f in figures.items() if f["data_trust"] != "trusted"}
    assert trust == {"job_placements": "anomalous", "ambulance_cat2_minutes": "anomalous", "bus_punctuality": "stale",
                     "passenger_journeys": "stale", "road_casualties_ksi": "stale", "step_free_stations": "stale"}
    assert "robust z" in figures["job_placements"]["data_trust_reason"]
    assert figures["rtt_18_weeks"]["status"] == "red" and figures["rtt_18_weeks"]["data_trust"] == "trusted"


def test_critical_failure_blocks_only_that_departments_publication(runs):
    first, second = runs["first"].run_id, runs["second"].run_id
    decisions = {d["department_id"]: d for d in rows(
        runs["wh"], "select * from publish.decisions where run_id = ?", [second])}
    assert {k: d["published"] for k, d in decisions.items()} == {"employment": True, "health": False, "transport": True}
    reason = decisions["health"]["reason"]
    assert "schema_contract failed on batch health_returns:" in reason and "column added 'notes'" in reason
    [block] = json.loads(decisions["health"]["blocking_checks"])
    assert block["check_name"] == "schema_contract" and block["source_file"] == "health/returns_2026-11.csv"
    status = {s["kpi_id"]: s for s in rows(runs["wh"], "select * from publish.kpi_status")}
    for kpi in HEALTH:  # the previous figures stay, marked stale, with the reason
        s = status[kpi]
        assert (s["period"], s["publication_run_id"], s["published"], s["data_trust"]) == (OCT, first, False, "stale"), kpi
        assert s["data_trust_reason"].startswith("publication blocked in this run: critical check(s) failed")
    assert status["rtt_18_weeks"]["status"] == "red"
    assert {s["publication_run_id"] for k, s in status.items() if k not in HEALTH} == {second}
    assert not rows(runs["wh"], "select * from publish.kpi_figures where run_id = ? and department_id = 'health'", [second])


def test_schema_change_batch_is_quarantined_whole_and_no_row_is_lost(runs):
    second = runs["second"].run_id
    [batch] = rows(runs["wh"], "select * from raw.batches where run_id = ? and source_id = 'health_returns'", [second])
    assert (batch["rows_in"], batch["rows_accepted"], batch["rows_quarantined"]) == (20, 0, 20)
    q = rows(runs["wh"], "select run_id, reason, detail, row_number from quality.quarantine_decisions where batch_id = ?",
             [batch["batch_id"]])
    assert len(q) == 20 and {(r["run_id"], r["reason"]) for r in q} == {(second, "schema_change")}
    assert {r["detail"] for r in q} == {"schema change (contract source_health_returns): column added 'notes'"}
    [check] = rows(runs["wh"], """select severity, success, observed from quality.check_results
                                  where batch_id = ? and check_name = 'schema_contract'""", [batch["batch_id"]])
    assert check == {"severity": "critical", "success": False, "observed": "column added 'notes'"}


def test_a_warning_does_not_block_and_an_outlier_makes_the_figure_anomalous(runs):
    second = runs["second"].run_id
    [claimants] = rows(runs["wh"], "select * from publish.kpi_status where kpi_id = 'claimant_count'")
    assert (claimants["period"], claimants["actual"], claimants["published"]) == (NOV, NOVEMBER_CLAIMANTS, True)
    assert claimants["data_trust"] == "anomalous" and "kpi outlier (critical)" in claimants["data_trust_reason"]
    # The October jump of job_placements was kept out of its history: November's normal value is trusted.
    [placements] = rows(runs["wh"], "select * from publish.kpi_status where kpi_id = 'job_placements'")
    assert (placements["period"], placements["data_trust"]) == (NOV, "trusted")
    found = rows(runs["wh"], "select kind, kpi_id, period from quality.drift_findings where run_id = ? and kpi_id = 'claimant_count'",
                 [second])
    assert found == [{"kind": "kpi_outlier", "kpi_id": "claimant_count", "period": NOV}]


def test_history_keeps_every_decision_with_its_run_id(runs):
    wh, ids = runs["wh"], {runs["first"].run_id, runs["second"].run_id}
    for table in ("quality.check_results", "quality.drift_findings", "publish.decisions", "quality.gx_validation_results"):
        # Fixed table names from the list above.
        assert {r["run_id"] for r in rows(wh, f"select distinct run_id from {table}")} == ids, table
    suites = {r["suite"] for r in rows(wh, "select distinct suite from quality.check_results where run_id = ?",
                                       [runs["second"].run_id])}
    assert {"kpiwatch", "source_employment_return", "mart_fct_kpi_progress", "dbt"} <= suites
    dbt = rows(wh, "select count(*) n, count(*) filter (where severity = 'warn') w from quality.check_results "
                   "where suite = 'dbt' and run_id = ?", [runs["first"].run_id])[0]
    assert dbt["n"] > 100 and dbt["w"] >= 1  # dbt's own severities, from the manifest
    quarantined = rows(wh, "select distinct run_id from quality.quarantine_decisions")
    assert {r["run_id"] for r in quarantined} == ids
    alert_runs = {r["run_id"] for r in rows(wh, "select distinct run_id from alerting.alert_log")}
    assert runs["first"].run_id in alert_runs


def test_asset_checks_report_contracts_drift_and_publication(runs):
    evals = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in runs["second"].get_asset_check_evaluations()}
    assert evals[("ingest/health_returns", "schema_contract")] is False
    assert evals[("ingest/employment_return", "schema_contract")] is True
    assert evals[("quality/drift_findings", "kpi_values_within_history")] is False
    assert evals[("publish/kpi_status", "departments_published")] is False
    assert evals[("publish/kpi_status", "actual_at_least_min")] is True
    assert evals[("publish/kpi_status", "actual_at_most_max")] is True


def test_explain_traces_the_red_kpi_to_its_source_rows(runs):
    data, wh = runs["data"], runs["wh"]
    path = data / "health" / "returns_2026-10.csv"
    with path.open(newline="") as fh:
        wanted = [n for n, r in enumerate(csv.DictReader(fh), start=1) if r["kpi_code"] == "rtt_18_weeks"]
    proc = cli("explain", "rtt_18_weeks", "2026-10", "--warehouse", str(wh))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "status red" in text and "data trust  stale" in text  # health's publication is blocked in run 2
    assert "health/returns_2026-10.csv" in text
    assert hashlib.sha256(path.read_bytes()).hexdigest() in text
    assert f"rows used here: {', '.join(map(str, wanted))}" in text
    assert f"in run {runs['first'].run_id}" in text
    assert "✓ source_health_returns.parsed_columns [critical]" in text
    assert "computed as ratio: 100 × Σ numerator / Σ denominator over 4 organisation(s)" in text
    as_json = json.loads(cli("explain", "rtt_18_weeks", "2026-10", "--warehouse", str(wh), "--format", "json").stdout)
    assert sorted(r["row_number"] for r in as_json["rows"]) == wanted
    bad = cli("explain", "rtt_18_weeks", "2031-01", "--warehouse", str(wh))
    assert bad.returncode == 2 and "has no figure for 2031-01" in bad.stderr
    # periods in the KPI's own frequency, labelled as such (one period model with ingest)
    quarter = cli("explain", "employment_rate", "2026-Q3", "--warehouse", str(wh))
    assert quarter.returncode == 0, quarter.stderr
    assert "period 2026-Q3" in quarter.stdout
    week = cli("explain", "rtt_18_weeks", "2026-W14", "--warehouse", str(wh))
    assert week.returncode == 2 and "not a period of this monthly KPI" in week.stderr


def test_status_shows_trust_beside_status_with_the_reason(runs):
    proc = cli("status", "--warehouse", str(runs["wh"]), "--format", "json")
    by_id = {k["kpi_id"]: k for k in json.loads(proc.stdout)["kpis"]}
    assert (by_id["rtt_18_weeks"]["status"], by_id["rtt_18_weeks"]["data_trust"]) == ("red", "stale")
    assert "publication blocked" in by_id["rtt_18_weeks"]["data_trust_reason"]
    assert by_id["claimant_count"]["data_trust"] == "anomalous"
    table = cli("status", "--warehouse", str(runs["wh"])).stdout
    assert "anomalous claimant_count: kpi outlier (critical)" in table
    assert "stale rtt_18_weeks: publication blocked in this run" in table


def test_every_time_a_run_stores_is_its_one_clock(runs):
    # Regression: stages read the wall clock each on their own, so a fixture's runs were dated by
    # the day the tests ran and a test comparing them with a fixed time failed from 27 Nov 2026.
    from tests.support.quality_runs import RUN1_NOW, RUN2_NOW

    for run, now in ((runs["first"], RUN1_NOW), (runs["second"], RUN2_NOW)):
        # A run's batches are stamped its now plus their arrival order within their source, in
        # microseconds (the later file of one drop is the later revision).
        loaded = rows(runs["wh"], "select source_id, loaded_at from raw.batches where run_id = ? "
                      "order by source_id, loaded_at", [run.run_id])
        assert loaded
        for source in {r["source_id"] for r in loaded}:
            offsets = [r["loaded_at"] - now for r in loaded if r["source_id"] == source]
            assert offsets == [dt.timedelta(microseconds=i) for i in range(len(offsets))], source
        # A batch's checks carry its stamp.
        checked = rows(runs["wh"], "select distinct checked_at from quality.check_results where run_id = ?", [run.run_id])
        assert checked and all(now <= r["checked_at"] < now + dt.timedelta(milliseconds=1) for r in checked)
    stamped = {  # table -> its time column, each row carrying the run id
        "quality.drift_findings": "detected_at",
        "publish.decisions": "decided_at", "publish.scorecard_snapshots": "taken_at", "ledger.runs": "recorded_at",
        "alerting.outbox": "created_at",
    }
    for run, now in ((runs["first"], RUN1_NOW), (runs["second"], RUN2_NOW)):
        for table, column in stamped.items():
            seen = rows(runs["wh"], f"select distinct {column} as t from {table} where run_id = ?", [run.run_id])
            assert [r["t"] for r in seen] == [now], (table, column)
    # The outbox was sent by the run that queued it, on the same clock.
    sent = rows(runs["wh"], "select distinct sent_at from alerting.outbox where run_id = ?", [runs["first"].run_id])
    assert [r["sent_at"] for r in sent] == [RUN1_NOW]
