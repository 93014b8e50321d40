"""Acceptance on real public data (../shared/realdata): NHS England A&E and MTA Bridges and
Tunnels, run through the whole graph from their example catalogs. Skipped when the data is absent."""
import csv
import datetime as dt
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.config import PROJECT_ROOT, Settings
from pipelines.warehouse import connect
from tests.conftest import REALDATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REALDATA.is_dir(), reason=f"real data not found at {REALDATA} (not part of the repository)"),
]
EXAMPLES = PROJECT_ROOT / "examples"


def run_example(name, tmp_path):
    from pipelines.definitions import build_definitions
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    settings = Settings.from_env({}, catalog_dir=EXAMPLES / name, warehouse=tmp_path / "w.duckdb",
                                 alerts_file=tmp_path / "alerts.jsonl").resolved()
    assert settings.data_dir == REALDATA.resolve()  # from the catalog's kpiwatch.yml
    import os
    saved = dict(os.environ)
    os.environ.update(settings.export())
    try:
        defs = build_definitions(settings)
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance, raise_on_error=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failed
    return settings.warehouse


def rows(wh, sql):
    with connect(wh, read_only=True) as con:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def test_nhs_ae_national_and_provider_performance(tmp_path):
    wh = run_example("nhs-ae", tmp_path)
    by_month, by_provider = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    with (REALDATA / "nhsr-ae-attendances" / "ae_attendances.csv").open() as fh:
        data = list(csv.DictReader(fh))
    for r in data:
        month = dt.date.fromisoformat(r["period"])
        for acc in (by_month[month], by_provider[(r["org_code"], month)]):
            acc[0] += int(r["attendances"])
            acc[1] += int(r["breaches"])
    [acc] = rows(wh, "select sum(rows_in) i, sum(rows_accepted) a, sum(rows_quarantined) q from raw.batches")
    assert acc == {"i": len(data), "a": len(data), "q": 0}  # 12,765 rows, all landed
    national = {r["period"]: r for r in rows(wh, "select * from marts.fct_kpi_progress where kpi_id = 'ae_four_hour'")}
    assert len(national) == len(by_month) == 36
    for month, (att, br) in by_month.items():
        assert national[month]["actual"] == pytest.approx(100 * (1 - br / att), abs=0.01)
        # a standing standard: not met in any month of the span (below 95% throughout); no
        # trajectory, no due date, so no forecast to a deadline
        assert (national[month]["judged_by"], national[month]["standard_value"]) == ("standard", 95.0)
        assert national[month]["standard_met"] is False and national[month]["status"] == "red"
        assert national[month]["expected_value"] is None
        assert national[month]["forecast_value"] is None and national[month]["forecast_status"] == "unknown"
    march_2019 = national[dt.date(2019, 3, 1)]
    assert (march_2019["periods_met_last_12"], march_2019["periods_judged_last_12"]) == (0, 12)
    assert march_2019["consecutive_misses"] == 36
    milestones = {m["milestone_id"]: m for m in rows(wh, "select * from marts.fct_milestones")}
    # judged on March 2019 alone (86.6%), although June 2018 was above 88%
    in_march = milestones["ae_88_in_march_2019"]
    assert (in_march["state"], in_march["judged_period"]) == ("missed", dt.date(2019, 3, 1))
    assert in_march["judged_actual"] == pytest.approx(86.604, abs=0.001) and in_march["forecast_value"] is None
    # reached by the due date, counting from April 2018: May 2018 (90.4%)
    during = milestones["ae_90_during_2018_19"]
    assert (during["state"], during["met_how"], during["met_period"]) == ("met", "data", dt.date(2018, 5, 1))
    # organisations against the standard: counted per month, and the counts add up
    orgs = {r["period"]: r for r in rows(wh, "select * from marts.fct_kpi_standard_orgs")}
    judged = rows(wh, """select period, count(*) filter (where actual is not null) as judged,
                                count(*) filter (where actual >= 95) as met
                         from marts.fct_kpi_org_values group by period""")
    assert len(orgs) == 36
    for r in judged:
        assert (orgs[r["period"]]["orgs_judged"], orgs[r["period"]]["orgs_met"]) == (r["judged"], r["met"])
        assert orgs[r["period"]]["orgs_met"] + orgs[r["period"]]["orgs_not_met"] == r["judged"]
    # `kpiwatch status --by-org`: the same counts, the providers that did not meet it worst first
    exe = str(Path(sys.executable).parent / "kpiwatch")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "DAGSTER_HOME"))}
    done = subprocess.run([exe, "status", "--catalog", str(EXAMPLES / "nhs-ae"), "--warehouse", str(wh), "--by-org",
                           "--periods", "2", "--format", "json"], env=env, capture_output=True, text=True, check=True)
    [latest, before] = json.loads(done.stdout)["standards"]
    assert (latest["period"], before["period"]) == ("2019-03-01", "2019-02-01")
    march = orgs[dt.date(2019, 3, 1)]
    assert (latest["orgs_met"], latest["orgs_judged"]) == (march["orgs_met"], march["orgs_judged"])
    shortfalls = [m["actual"] for m in latest["not_met"]]
    assert len(shortfalls) == march["orgs_not_met"] and shortfalls == sorted(shortfalls) and max(shortfalls) < 95
    table = subprocess.run([exe, "status", "--catalog", str(EXAMPLES / "nhs-ae"), "--warehouse", str(wh), "--by-org"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert f"ae_four_hour 2019-03: {march['orgs_met']} of {march['orgs_judged']} organisations met the 95.0% standard" in \
        " ".join(table.split())
    # `--periods N` gives each KPI's history in JSON
    history = json.loads(subprocess.run(
        [exe, "status", "--catalog", str(EXAMPLES / "nhs-ae"), "--warehouse", str(wh), "--periods", "3", "--format", "json"],
        env=env, capture_output=True, text=True, check=True).stdout)["kpis"][0]["history"]
    assert [h["period"] for h in history] == ["2019-01-01", "2019-02-01", "2019-03-01"]
    assert all(h["standard_met"] is False and h["judged_by"] == "standard" for h in history)
    providers = {(r["org_id"], r["period"]): r["actual"] for r in rows(wh, "select * from marts.fct_kpi_org_values")}
    assert len(providers) == len(by_provider)
    for (org, month), (att, br) in list(by_provider.items())[:500]:
        expected = None if att == 0 else 100 * (1 - br / att)
        assert providers[(org, month)] == (pytest.approx(expected, abs=0.01) if expected is not None else None)


def test_mta_statuses_follow_direction_and_zero_targets_are_grey(tmp_path):
    with (REALDATA / "mta-tbta" / "MTA_Performance_TBTA.csv").open(encoding="utf-8-sig") as fh:
        data = list(csv.DictReader(fh))
    # The catalog's directions agree with the data's DESIRED_CHANGE.
    kpis = {k["id"]: k for k in yaml.safe_load((EXAMPLES / "mta-bridges-tunnels" / "kpis.yml").read_text())["kpis"]}
    sources = yaml.safe_load((EXAMPLES / "mta-bridges-tunnels" / "sources.yml").read_text())["sources"]
    name_to_id = sources[0]["columns"]["kpi_id"]["map"]
    for r in data:
        want = "higher_is_better" if r["DESIRED_CHANGE"] == "U" else "lower_is_better"
        assert kpis[name_to_id[r["INDICATOR_NAME"]]]["direction"] == want

    # the year-to-date KPIs are cumulative, their figures and targets used as delivered
    assert {k for k, v in kpis.items() if v.get("year_to_date") == "delivered"} == {k for k in kpis if k.endswith("_ytd")}
    wh = run_example("mta-bridges-tunnels", tmp_path)
    [acc] = rows(wh, "select sum(rows_in) i, sum(rows_accepted) a, sum(rows_quarantined) q from raw.batches")
    assert acc == {"i": 2 * len(data), "a": 2 * len(data), "q": 0}  # monthly and YTD reads of 348 rows
    progress = {(r["kpi_id"], r["period"]): r for r in rows(wh, "select * from marts.fct_kpi_progress")}
    checked = 0
    for r in data:
        period = dt.date(int(r["PERIOD_YEAR"]), int(r["PERIOD_MONTH"]), 1)
        for suffix, actual_col, target_col in (("", "MONTHLY_ACTUAL", "MONTHLY_TARGET"), ("_ytd", "YTD_ACTUAL", "YTD_TARGET")):
            kpi_id = name_to_id[r["INDICATOR_NAME"]] + suffix
            row = progress[(kpi_id, period)]
            actual, target = float(r[actual_col]), float(r[target_col] or 0)
            assert row["actual"] == pytest.approx(actual)
            if target == 0:
                assert row["status"] == "grey" and row["expected_value"] is None
                continue
            gap = (actual - target) if r["DESIRED_CHANGE"] == "U" else (target - actual)
            tol = kpis[kpi_id]["tolerance"]
            want = "green" if gap >= 0 else ("amber" if gap >= -tol - 1e-9 else "red")
            assert row["status"] == want, (kpi_id, period, actual, target)
            checked += 1
    assert checked > 300
