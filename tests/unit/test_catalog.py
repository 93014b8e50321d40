"""Catalog validation: the demo passes; each kind of mistake is named with file, line and key."""
import re

import pytest

from pipelines.catalog.loader import CatalogError, load_catalog
from pipelines.config import DEFAULT_CATALOG


def problems(directory) -> list[str]:
    with pytest.raises(CatalogError) as exc:
        load_catalog(directory)
    return [str(p) for p in exc.value.problems]


def edit(path, old, new, count=1):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count))


def test_demo_catalog_is_valid():
    cat = load_catalog(DEFAULT_CATALOG)
    assert len(cat.departments) == 3
    assert len(cat.kpis) >= 12
    assert len(cat.milestones) >= 6
    assert {k["frequency"] for k in cat.kpis.values()} == {"monthly", "quarterly"}
    assert {k["direction"] for k in cat.kpis.values()} == {"higher_is_better", "lower_is_better"}
    assert any(k["aggregation"] == "ratio" for k in cat.kpis.values())
    assert {s["kind"] for s in cat.sources.values()} == {"csv", "excel", "sql"}
    assert all(k["owner"].get("slack") for k in cat.kpis.values())


def test_unknown_key_is_named_with_line(catalog_copy):
    edit(catalog_copy / "departments.yml", "    channel: \"#health-kpis\"", "    channel: \"#health-kpis\"\n    colour: red")
    [msg] = problems(catalog_copy)
    assert msg.startswith("departments.yml:5: departments[0]: unknown key(s) 'colour'")


def test_bad_enum_value(catalog_copy):
    edit(catalog_copy / "kpis.yml", "direction: lower_is_better", "direction: downwards")
    [msg] = problems(catalog_copy)
    assert re.match(r"kpis\.yml:\d+: kpis\[3\]\.direction: 'downwards' is not one of", msg)


def test_bad_date(catalog_copy):
    edit(catalog_copy / "milestones.yml", 'due: "2026-06-30"', 'due: "2026-13-30"')
    [msg] = problems(catalog_copy)
    assert "milestones[1].due: '2026-13-30' is not a date (YYYY-MM-DD)" in msg


def test_wrong_type(catalog_copy):
    edit(catalog_copy / "kpis.yml", "tolerance: 1.0", "tolerance: one")
    [msg] = problems(catalog_copy)
    assert "kpis[0].tolerance: 'one' is not an amount (0.5) or a share of the target ('10%')" in msg


def test_missing_required_key(catalog_copy):
    edit(catalog_copy / "kpis.yml", "    unit: minutes\n", "")
    [msg] = problems(catalog_copy)
    assert "kpis[3]: 'unit' is a required property" in msg


def test_every_problem_is_reported_at_once(catalog_copy):
    edit(catalog_copy / "kpis.yml", "direction: lower_is_better", "direction: down", count=-1)
    edit(catalog_copy / "milestones.yml", 'due: "2026-06-30"', 'due: "soon"')
    msgs = problems(catalog_copy)
    assert len(msgs) == 6
    assert sum("direction" in m for m in msgs) == 5


def test_duplicate_id(catalog_copy):
    edit(catalog_copy / "kpis.yml", "  - id: rtt_18_weeks", "  - id: ae_four_hour")
    msgs = problems(catalog_copy)
    assert any("kpis[1].id: duplicate id 'ae_four_hour'" in m for m in msgs)


def test_unknown_references(catalog_copy):
    edit(catalog_copy / "kpis.yml", "source: transport_db", "source: transport_api")
    edit(catalog_copy / "milestones.yml", "kpi: bus_punctuality", "kpi: bus_on_time")
    edit(catalog_copy / "sources.yml", "department: transport", "department: roads")
    msgs = problems(catalog_copy)
    assert any("sources[2].department: unknown department 'roads'" in m for m in msgs)
    assert any(re.search(r"kpis\[9\]\.source: unknown source 'transport_api'", m) for m in msgs)
    assert any("milestones[5].kpi: unknown KPI 'bus_on_time'" in m for m in msgs)


def test_ratio_kpi_needs_numerator_and_denominator(catalog_copy):
    edit(catalog_copy / "kpis.yml", "    aggregation: mean\n    tolerance: 1.5\n    baseline: {value: 82.0",
         "    aggregation: ratio\n    tolerance: 1.5\n    baseline: {value: 82.0")
    msgs = problems(catalog_copy)
    assert any("kpis[9].aggregation: ratio KPI needs source 'transport_db' to map 'numerator' and 'denominator'" in m for m in msgs)


def test_target_before_baseline(catalog_copy):
    edit(catalog_copy / "kpis.yml", '{value: 78.0, due: "2027-03-31"}', '{value: 78.0, due: "2022-03-31"}')
    [msg] = problems(catalog_copy)
    assert "kpis[0].targets[0].due: target due 2022-03-31 is not after the baseline date 2023-09-30" in msg


def test_duplicate_yaml_key_and_invalid_yaml(catalog_copy):
    edit(catalog_copy / "kpis.yml", "    unit: percent\n", "    unit: percent\n    unit: ratio\n")
    edit(catalog_copy / "milestones.yml", "milestones:", "milestones: [")
    msgs = problems(catalog_copy)
    assert any(m.startswith("kpis.yml:") and "duplicate key 'unit'" in m for m in msgs)
    assert any(m.startswith("milestones.yml:") and "invalid YAML" in m for m in msgs)


def test_missing_file_and_directory(catalog_copy, tmp_path):
    (catalog_copy / "sources.yml").unlink()
    assert problems(catalog_copy) == ["sources.yml: (top): required catalog file is missing"]
    assert "catalog directory not found" in problems(tmp_path / "nowhere")[0]


def test_path_traversal_refused(catalog_copy):
    edit(catalog_copy / "sources.yml", 'path: "health/*.csv"', 'path: "../../etc/*.csv"')
    [msg] = problems(catalog_copy)
    assert "sources[0].path: must be a relative path inside the data directory" in msg


def test_identifier_pattern_refuses_sql(catalog_copy):
    edit(catalog_copy / "sources.yml", "table: kpi_returns", 'table: "kpi_returns; drop table x"')
    [msg] = problems(catalog_copy)
    assert "sources[2].table" in msg and "not a valid identifier" in msg


def test_standard_alone_and_with_a_trajectory(catalog_copy):
    # a standard with a dated change and no trajectory is a complete KPI
    edit(catalog_copy / "kpis.yml", '''    standard: {value: 95.0, effective_from: "2010-11-01"}
    baseline: {value: 72.0, date: "2023-09-30"}
    targets:
      - {value: 78.0, due: "2027-03-31"}
''', '''    standard:
      - {value: 98.0, effective_from: "2004-01-01"}
      - {value: 95.0, effective_from: "2010-11-01"}
''')
    cat = load_catalog(catalog_copy)
    assert [p["value"] for p in cat.kpis["ae_four_hour"]["standard"]] == [98.0, 95.0]
    # the demo keeps its standard beside the recovery trajectory
    demo = load_catalog(DEFAULT_CATALOG).kpis["ae_four_hour"]
    assert demo["standard"] == {"value": 95.0, "effective_from": "2010-11-01"} and "targets" in demo


def test_kpi_without_standard_or_trajectory_and_duplicate_standard_dates(catalog_copy):
    edit(catalog_copy / "kpis.yml", '''    standard: {value: 95.0, effective_from: "2010-11-01"}
    baseline: {value: 72.0, date: "2023-09-30"}
    targets:
      - {value: 78.0, due: "2027-03-31"}
''', "")
    edit(catalog_copy / "kpis.yml", '''    baseline: {value: 60.0''', '''    standard:
      - {value: 92.0, effective_from: "2012-04-01"}
      - {value: 90.0, effective_from: "2012-04-01"}
    baseline: {value: 60.0''')
    msgs = problems(catalog_copy)
    # a KPI without standard or targets is a data-only indicator: accepted
    assert not any("kpis[0]" in m for m in msgs), msgs
    assert any("kpis[1].standard[1].effective_from: two standards take effect on 2012-04-01" in m for m in msgs), msgs


def test_data_only_indicator_and_a_withdrawn_target(catalog_copy, tmp_path):
    import datetime as dt

    import duckdb

    from pipelines.catalog.tables import write_catalog

    # ae_four_hour without standard, baseline or targets: a data-only indicator
    edit(catalog_copy / "kpis.yml", '''    standard: {value: 95.0, effective_from: "2010-11-01"}
    baseline: {value: 72.0, date: "2023-09-30"}
    targets:
      - {value: 78.0, due: "2027-03-31"}
''', "")
    # rtt_18_weeks' target withdrawn from October 2026
    text = (catalog_copy / "kpis.yml").read_text()
    at = text.index("targets:", text.index("id: rtt_18_weeks"))
    end = text.index("\n", text.index("due:", at))
    (catalog_copy / "kpis.yml").write_text(
        text[:end + 1] + '''      - {withdrawn: true, effective_from: "2026-10-01"}\n''' + text[end + 1:])
    cat = load_catalog(catalog_copy)
    assert "standard" not in cat.kpis["ae_four_hour"] and "targets" not in cat.kpis["ae_four_hour"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_catalog(con, cat, dt.date(2026, 11, 15))
    assert con.execute("select count(*) from catalog.targets where kpi_id = 'ae_four_hour'").fetchone() == (0,)
    assert con.execute("select point_type, point_date from catalog.targets where kpi_id = 'rtt_18_weeks' "
                       "and point_type = 'withdrawn'").fetchall() == [("withdrawn", dt.date(2026, 10, 1))]
    # a withdrawal with a value, a target without a due date: named
    edit(catalog_copy / "kpis.yml", '{withdrawn: true, effective_from: "2026-10-01"}',
         '{withdrawn: true, effective_from: "2026-10-01", value: 1}')
    edit(catalog_copy / "kpis.yml", '- {value: 92.0, due: "2027-03-31"}', '- {value: 92.0}')
    msgs = problems(catalog_copy)
    assert any("a withdrawn target is {withdrawn: true, effective_from: DATE}" in m for m in msgs), msgs
    assert any("a target needs 'value' and 'due'" in m for m in msgs), msgs


def test_milestone_tests_are_checked(catalog_copy):
    path = catalog_copy / "milestones.yml"
    path.write_text(path.read_text() + '''  - id: in_march
    title: 76% in March
    kpi: ae_four_hour
    test: in_period
    due: "2027-03-31"
    from: "2026-04-01"
  - id: done_by_hand
    title: Published the recovery plan
    test: manual
    department: health
    due: "2026-06-30"
    completed_on: "2026-06-01"
  - id: orphan
    title: Nobody's step
    test: manual
    due: "2026-06-30"
''')
    msgs = problems(catalog_copy)
    assert any("milestones[7]: a in_period milestone needs 'threshold'" in m for m in msgs), msgs
    assert any("milestones[7].from: 'from' applies to by_date milestones only" in m for m in msgs), msgs
    assert any("milestones[8].completed_on: say who recorded the completion in 'completed_by'" in m for m in msgs), msgs
    assert any("milestones[9]: a manual milestone names its 'kpi' or its 'department'" in m for m in msgs), msgs
    assert len(msgs) == 4, msgs


def test_standards_and_milestone_tests_reach_the_catalog_tables(catalog_copy, tmp_path):
    import datetime as dt

    import duckdb

    from pipelines.catalog.tables import write_catalog

    path = catalog_copy / "milestones.yml"
    path.write_text(path.read_text() + '''  - id: plan_published
    title: Recovery plan published
    test: manual
    department: health
    due: "2026-06-30"
    completed_on: "2026-06-01"
    completed_by: Grace Mensah
''')
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    counts = write_catalog(con, load_catalog(catalog_copy), dt.date(2026, 11, 15))
    assert counts["standards"] == 1
    assert con.execute("select * from catalog.standards").fetchall() == [
        ("ae_four_hour", 95.0, dt.date(2010, 11, 1), None, None)]
    row = con.execute("""select department_id, kpi_id, threshold, test, completed_on, completed_by, owner_name
                         from catalog.milestones where milestone_id = 'plan_published'""").fetchone()
    # no KPI: the department head owns it
    assert row == ("health", None, None, "manual", dt.date(2026, 6, 1), "Grace Mensah", "Dr Amara Okafor")
    assert con.execute("select test from catalog.milestones where milestone_id = 'claimants_below_40k'").fetchone() == ("by_date",)


def test_frequencies_and_fiscal_year_start(catalog_copy, tmp_path):
    import datetime as dt

    import duckdb

    from pipelines.catalog.tables import write_catalog

    edit(catalog_copy / "kpis.yml", "    frequency: monthly\n", "    frequency: weekly\n")  # ae_four_hour
    edit(catalog_copy / "kpis.yml", "    frequency: monthly\n", "    frequency: fiscal_year\n    fiscal_year_start_month: 7\n")
    edit(catalog_copy / "kpis.yml", "    frequency: monthly\n", "    frequency: annual\n")
    cat = load_catalog(catalog_copy)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_catalog(con, cat, dt.date(2026, 11, 15))
    rows = dict(con.execute("select frequency || ':' || kpi_id, fiscal_start_month from catalog.kpis "
                            "where frequency in ('weekly', 'fiscal_year', 'annual')").fetchall())
    assert rows == {"weekly:ae_four_hour": 1, "fiscal_year:rtt_18_weeks": 7, "annual:cancer_62_day": 1}
    # a start month only means something for a fiscal year
    edit(catalog_copy / "kpis.yml", "    frequency: annual\n", "    frequency: annual\n    fiscal_year_start_month: 4\n")
    [msg] = problems(catalog_copy)
    assert "fiscal_year_start_month applies to fiscal_year, fiscal quarterly and year_to_date KPIs only" in msg


def test_band_aggregation_and_year_to_date_rules(catalog_copy, tmp_path):
    import datetime as dt

    import duckdb

    from pipelines.catalog.tables import write_catalog

    # a within_range KPI with its band; a stock; a year-to-date count with annual targets only
    edit(catalog_copy / "kpis.yml", '''    direction: higher_is_better
    frequency: monthly
    aggregation: ratio
    scale: 100
    tolerance: 1.0''', '''    direction: within_range
    frequency: monthly
    aggregation: ratio
    scale: 100
    tolerance: 1.0''')
    edit(catalog_copy / "kpis.yml", '''    standard: {value: 95.0, effective_from: "2010-11-01"}
    baseline: {value: 72.0, date: "2023-09-30"}
    targets:
      - {value: 78.0, due: "2027-03-31"}
''', '''    standard: {lower: 85.0, upper: 92.0, effective_from: "2024-01-01"}
''')
    cat = load_catalog(catalog_copy)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_catalog(con, cat, dt.date(2026, 11, 15))
    assert con.execute("select * from catalog.standards").fetchall() == [
        ("ae_four_hour", None, dt.date(2024, 1, 1), 85.0, 92.0)]
    # a band needs lower <= upper; a threshold is not a band; a mean cannot be summed over a year
    edit(catalog_copy / "kpis.yml", "{lower: 85.0, upper: 92.0,", "{lower: 95.0, upper: 92.0,")
    edit(catalog_copy / "kpis.yml", "    aggregation: mean\n", "    aggregation: mean\n    year_to_date: computed\n")
    msgs = problems(catalog_copy)
    assert any("band lower 95.0 is above upper 92.0" in m for m in msgs), msgs
    assert any("a mean KPI cannot be added up over the year" in m for m in msgs), msgs
    edit(catalog_copy / "kpis.yml", "{lower: 95.0, upper: 92.0,", "{value: 90.0,")
    assert any("a within_range KPI's standard is a band" in m for m in problems(catalog_copy))
