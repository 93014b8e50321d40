"""Acceptance on NHS England's referral-to-treatment workbooks (../shared/realdata/nhse-rtt-2015):
one catalog (examples/nhs-rtt), no templating, one run over all 18 official .xls files reproduces
the published national figures (national_truth.csv: 18 of 18, met / not met) and every
commissioner's `Total` row; the April 2015 rename blocks nothing; subtotal rows are excluded
by rule, counted, never rejected. Skipped when the data is absent."""
import csv
from collections import defaultdict

import pytest

from tests.conftest import REALDATA
from tests.integration.test_realdata import rows, run_example

RTT = REALDATA / "nhse-rtt-2015"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not RTT.is_dir(), reason=f"real data not found at {RTT} (not part of the repository)"),
]
KPI = {"incomplete": "rtt_incomplete", "admitted": "rtt_admitted", "non_admitted": "rtt_non_admitted"}
PATHWAY_OF_FILE = {"Incomplete": "incomplete", "Admitted": "admitted", "NonAdmitted": "non_admitted"}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return run_example("nhs-rtt", tmp_path_factory.mktemp("rtt"))


def commissioner_totals():
    """Each commissioner's `Total` row, read straight from the workbooks (independently of kpiwatch)."""
    import datetime as dt

    from python_calamine import CalamineWorkbook

    out, data_rows = {}, 0
    for path in sorted(RTT.glob("*.xls")):
        pathway = PATHWAY_OF_FILE[path.name.split("-")[0]]
        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Commissioner").to_python(skip_empty_area=False)
        period = dt.datetime.strptime(sheet[4][2], "%B %Y").date()
        header = sheet[13]
        num = header.index("Total within 18 weeks" if pathway == "incomplete"
                           else "Total (with a known clock start) within 18 weeks")
        den = header.index("Total number of incomplete pathways" if pathway == "incomplete"
                           else "Total number of completed pathways (with a known clock start)")
        for r in sheet[14:]:
            if any(v != "" for v in r):
                data_rows += 1
                if r[5] == "Total":
                    out[(KPI[pathway], str(r[2]), period)] = (r[num], r[den])
    return out, data_rows


def test_national_figures_match_the_published_truth(warehouse):
    with (RTT / "national_truth.csv").open() as fh:
        truth = list(csv.DictReader(fh))
    progress = {(r["kpi_id"], r["period"].strftime("%Y-%m")): r
                for r in rows(warehouse, "select * from marts.fct_kpi_progress")}
    matched = 0
    for t in truth:
        got = progress[(KPI[t["pathway"]], t["period"])]
        assert (got["numerator"], got["denominator"]) == (float(t["within_18_weeks"]), float(t["total_pathways"]))
        assert round(got["actual"], 4) == pytest.approx(float(t["published_pct"]), abs=1e-9)
        # kpiwatch's own judgement against the standard, as NHS England published it.
        assert got["judged_by"] == "standard" and got["standard_value"] == pytest.approx(float(t["standard_pct"]))
        assert ("met" if got["standard_met"] else "not met") == t["standard"], t
        assert got["status"] == ("green" if t["standard"] == "met" else "red"), t
        matched += 1
    assert matched == len(truth) == 18


def test_every_commissioner_total_row_is_reproduced(warehouse):
    totals, data_rows = commissioner_totals()
    orgs = {(r["kpi_id"], r["org_id"], r["period"]): (r["numerator"], r["denominator"])
            for r in rows(warehouse, "select * from marts.fct_kpi_org_values")}
    assert orgs == totals  # 212 commissioners a month until March 2015, 210 from April
    assert len(totals) == 3 * (4 * 212 + 2 * 210)
    # Every data row is landed or excluded by the named rule; none is quarantined.
    [acc] = rows(warehouse, "select sum(rows_in) i, sum(rows_accepted) a, sum(rows_quarantined) q, "
                            "sum(rows_excluded) x, count(*) n from raw.batches")
    assert acc == {"i": data_rows - len(totals), "a": data_rows - len(totals), "q": 0, "x": len(totals), "n": 18}
    excluded = rows(warehouse, "select rule, sum(rows) n from raw.excluded_rows group by rule")
    assert excluded == [{"rule": "commissioner_total", "n": len(totals)}]


def test_the_april_rename_blocks_nothing_and_periods_come_from_the_title_cell(warehouse):
    schemas = rows(warehouse, "select verdict, changes from quality.batch_schemas")
    assert {s["verdict"] for s in schemas} <= {"baseline", "matches"}
    notes = {s["changes"] for s in schemas if s["changes"]}
    assert "information: column renamed 'Area Team Code' → 'Region Code' (not mapped)" in notes
    origins = rows(warehouse, "select distinct period_origin from raw.batches where source_file like '%Apr15%'")
    assert {o["period_origin"] for o in origins} == {"title cell Commissioner!C5 beside 'Period:': 'April 2015'"}
    [decision] = rows(warehouse, "select published from publish.decisions")
    assert decision["published"]


def test_the_audit_report_shows_the_excluded_rows(warehouse):
    html = (warehouse.parent / "reports" / "audit-report.html").read_text()
    assert "Excluded by row rules" in html and "commissioner_total" in html
    assert "title cell Commissioner!C5 beside &#x27;Period:&#x27;: &#x27;April 2015&#x27;" in html


def test_explain_summarises_thousands_of_rows_and_names_the_excluded_ones(warehouse):
    import datetime as dt

    from pipelines.reporting.trail import SHOWN_ROWS, kpi_trail, render_text
    from pipelines.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        trail = kpi_trail(con, "rtt_admitted", dt.date(2015, 4, 1))
    text = render_text(trail)
    assert len(trail["rows"]) == 3990 and f"… and {3990 - SHOWN_ROWS} more row(s) (all of them: --format json)" in text
    assert "100 × 249,141 / 292,166 = 85.2738" in text
    assert "excluded by rule commissioner_total: 210 row(s) (records 20, 40, 60" in text
    assert "period from title cell Commissioner!C5 beside 'Period:': 'April 2015'" in text
    assert len(text.splitlines()) < 80
    assert "00C|AP100" in text and "Commissioner!A15" in text  # the first data row, as the sheet shows it
