"""A council's quarterly return, run for real (`kpiwatch run`, `status`, `explain`, the scorecard):
tolerance as a share of the target, a quarter with no accepted figure, fiscal quarter labels
(`2014/15 Q2`) everywhere, the council's own codes beside the names, targets with the precision
they were written with, a quarterly forecast's stated reason, a data-only indicator and a target
withdrawn mid-year (docs/kpi-model.md, "A council's quarterly performance report")."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).parent / "kpiwatch")

# Code, Period, Actual: one return for every quarter so far. CS02's 2014/15 Q2 value was not
# available (an empty cell): quarantined as missing_value.
ROWS = [
    ("CS01", "2013/14 Q3", "0.4"), ("CS01", "2013/14 Q4", "0.9"), ("CS01", "2014/15 Q1", "1.5"),
    ("CS01", "2014/15 Q2", "2.84"),
    ("CS02", "2014/15 Q1", "85.5"), ("CS02", "2014/15 Q2", ""),
    ("CS03", "2014/15 Q1", "12"), ("CS03", "2014/15 Q2", "15"),
    ("CS04", "2014/15 Q1", "12"), ("CS04", "2014/15 Q2", "14"),
    ("CS05", "2014/15 Q1", "52"), ("CS05", "2014/15 Q2", "55"),
]


def _kpi(kpi_id: str, name: str, **over) -> dict:
    base = {"id": kpi_id, "code": kpi_id.upper(), "name": name, "department": "customer_services",
            "source": "council_return", "owner": {"name": "Performance officer"}, "unit": "count",
            "direction": "higher_is_better", "frequency": "quarterly", "fiscal_year_start_month": 4,
            "aggregation": "sum"}
    base.update(over)
    return base


def _council(tmp_path: Path) -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    docs = {
        "kpiwatch.yml": {"name": "Council corporate return", "as_of": "2014-11-20", "defaults": {"tolerance": "10%"}},
        "departments.yml": {"departments": [{"id": "customer_services", "name": "Customer services"}]},
        "sources.yml": {"sources": [{
            "id": "council_return", "department": "customer_services", "kind": "csv", "path": "council/*.csv",
            "cadence": "quarterly", "lag_days": 30,
            "columns": {"kpi_id": {"column": "Code", "map": {c: c.lower() for c in ("CS01", "CS02", "CS03", "CS04", "CS05")}},
                        "period": "Period", "value": "Actual"}}]},
        "kpis.yml": {"kpis": [
            # profiled cumulative targets: 1.58 by Q1, 3.15 by Q2 (amber within 10% of each)
            _kpi("cs01", "Benefit claims processed (thousands, year to date)", unit="thousand",
                 baseline={"value": 0.0, "date": "2013-09-30"},
                 targets=[{"value": 1.58, "due": "2014-06-30"}, {"value": 3.15, "due": "2014-09-30"},
                          {"value": 6.3, "due": "2015-03-31"}]),
            _kpi("cs02", "Calls answered within 20 seconds", unit="percent",
                 standard={"value": 80.0, "effective_from": "2010-04-01"}),
            _kpi("cs03", "Households in temporary accommodation"),  # data only: no standard, no targets
            _kpi("cs04", "Empty homes brought back into use", baseline={"value": 10, "date": "2014-03-31"},
                 targets=[{"value": 20, "due": "2015-03-31"}, {"withdrawn": True, "effective_from": "2014-07-01"}]),
            _kpi("cs05", "Missed bin collections resolved", baseline={"value": 50, "date": "2014-03-31"},
                 targets=[{"value": 60, "due": "2015-03-31"}]),
        ]},
    }
    for name, doc in docs.items():
        (catalog / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    data = tmp_path / "data" / "council"
    data.mkdir(parents=True)
    (data / "2014-15.csv").write_text("Code,Period,Actual\n" + "".join(f"{c},{p},{v}\n" for c, p, v in ROWS))
    return catalog


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_", "DAGSTER_HOME"))}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], env=_env(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def council(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("council")
    catalog = _council(tmp_path)
    warehouse = tmp_path / "wh" / "w.duckdb"
    run = _cli("run", "--quiet", "--catalog", str(catalog), "--data-dir", str(tmp_path / "data"),
               "--warehouse", str(warehouse))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    return tmp_path, catalog, warehouse, run


def test_status_table_and_json(council):
    tmp_path, catalog, warehouse, _ = council
    table = _cli("status", "--catalog", str(catalog), "--warehouse", str(warehouse))
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())  # (table cells wrap within their column)
    assert "Traceback" not in table.stdout + table.stderr
    rows = json.loads(_cli("status", "--format", "json", "--catalog", str(catalog), "--warehouse", str(warehouse)).stdout)
    kpis = {k["kpi_id"]: k for k in rows["kpis"]}

    # 1. tolerance as a share of the target: 2.84 against 3.15 is within 10% (0.315): amber
    cs01 = kpis["cs01"]
    assert (cs01["status"], cs01["tolerance_amount"], cs01["tolerance_kind"]) == ("amber", pytest.approx(0.315), "share")
    # 2. CS02's Q2 row was quarantined: no figure for 2014/15 Q2, never Q1's 85.5 as current
    cs02 = kpis["cs02"]
    assert cs02["no_figure"]["text"] == "no figure for 2014/15 Q2 (1 row quarantined: missing_value)"
    assert cs02["actual"] is None and cs02["status"] == "grey" and cs02["previous_figure"]["actual"] == 85.5
    assert cs02["data_trust"] == "stale" and "source up to date" not in cs02["data_trust_reason"]
    assert "no figure for 2014/15 Q2 (1 row quarantined: missing_value)" in text
    # 3./4. fiscal quarter labels; the council's code beside the id
    assert "2014/15 Q2" in text and "2014-07" not in text and "2014-Q3" not in text
    assert "CS01 (cs01)" in text and "CS03 (cs03)" in text
    # 5. the precision targets were given: 2.84 against 3.15 (not 2.8 / 3.1 / 3.2)
    assert "2.84" in text and "3.15 for" in text and "2.8 " not in text and "3.1 " not in text
    assert (cs01["target_value"], str(cs01["target_date"])) == (3.15, "2014-09-30") and cs01["decimals"] == 2
    assert "amber (within 10%" in text
    # 6. a quarterly forecast from 4 quarters; with 2 so far the reason is said
    assert kpis["cs05"]["forecast_reason"] == "forecast needs 4 quarters, 2 so far"
    assert "forecast needs 4" in text
    # 7. a data-only indicator and a withdrawn target: "no target", value still shown
    assert kpis["cs03"]["actual"] == 15 and kpis["cs03"]["status"] == "grey" and kpis["cs03"]["expected_value"] is None
    assert kpis["cs04"]["actual"] == 14 and kpis["cs04"]["status"] == "grey" and kpis["cs04"]["target_withdrawn"] is True
    assert "no target (target" in text and re.search(r"CS03 \(cs03\).*?no target", text)


def test_explain_takes_the_fiscal_quarter_and_points_at_the_quarantined_row(council):
    _, _, warehouse, _ = council
    shown = _cli("explain", "cs01", "2014/15 Q2", "--warehouse", str(warehouse))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "CS01 (cs01) — Benefit claims processed" in out and "period 2014/15 Q2" in out
    assert "2.84 thousand, status amber (within 10% of target) (expected 3.15 thousand, target 3.15 thousand" in out
    # the other accepted forms of the same quarter
    for form in ("2014-Q3", "2014-07"):
        again = _cli("explain", "cs01", form, "--warehouse", str(warehouse))
        assert again.returncode == 0 and "period 2014/15 Q2" in again.stdout, again.stderr
    missing = _cli("explain", "cs02", "2014/15 Q2", "--warehouse", str(warehouse))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    message = " ".join(missing.stderr.split())
    assert "cs02 has no figure for 2014/15 Q2 (1 row quarantined: missing_value)" in message
    assert "missing_value — value is empty" in message and "latest periods: 2014/15 Q1" in message
    # the latest figure of cs02 says it is not current
    q1 = _cli("explain", "cs02", "2014/15 Q1", "--warehouse", str(warehouse))
    assert "due period no figure for 2014/15 Q2 (1 row quarantined: missing_value): this figure is not current" \
        in " ".join(q1.stdout.split())
    data_only = _cli("explain", "cs03", "2014/15 Q2", "--warehouse", str(warehouse))
    assert "15.0 count, no target (shown as data only" in data_only.stdout


def test_scorecard(council):
    tmp_path, _, _, _ = council
    page = (tmp_path / "wh" / "reports" / "scorecard.html").read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "CS01 Benefit claims processed (thousands, year to date)" in text
    assert "Slipping: within 10% of target" in text
    assert "No figure for 2014/15 Q2 (1 row quarantined: missing_value); last figure 85.5% (2014/15 Q1)" in text
    assert "3.15 by 30 Sep 2014" in text
    assert "Forecast needs 4 quarters, 2 so far" in text
    assert "No target (data only)" in text and "No target (shown as data only): withdrawn" in text
    assert "2014-07" not in text and "Jul 2014" not in text


def test_status_for_a_period_takes_the_fiscal_quarter(council):
    _, catalog, warehouse, _ = council
    args = ("--catalog", str(catalog), "--warehouse", str(warehouse))
    q1 = json.loads(_cli("status", "--period", "2014/15 Q1", "--format", "json", *args).stdout)
    by_id = {k["kpi_id"]: k for k in q1["kpis"]}
    assert by_id["cs02"]["actual"] == 85.5 and str(by_id["cs02"]["period"]) == "2014-04-01"
    assert by_id["cs01"]["actual"] == 1.5 and by_id["cs01"]["status"] == "amber"  # 0.08 short of 1.58: within 10%
    # the same quarter in its calendar form; Q2 of CS02 has no figure, with its quarantined row
    q2 = json.loads(_cli("status", "--period", "2014-Q3", "--format", "json", *args).stdout)
    cs02 = {k["kpi_id"]: k for k in q2["kpis"]}["cs02"]
    assert cs02["actual"] is None and cs02["no_figure"]["text"] == "no figure for 2014/15 Q2 (1 row quarantined: missing_value)"
    table = _cli("status", "--period", "2014/15 Q2", *args)
    assert table.returncode == 0 and "for the period 2014/15 Q2" in table.stdout
    # a week is a period of none of these quarterly KPIs: named, exit 2, no traceback
    week = _cli("status", "--period", "2014-W03", *args)
    assert week.returncode == 2 and "is a period of no KPI" in week.stderr and "Traceback" not in week.stderr
