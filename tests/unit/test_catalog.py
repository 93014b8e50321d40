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
    assert "kpis[0].tolerance: 'one' is not of type 'number'" in msg


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
