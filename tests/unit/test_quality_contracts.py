"""Source contracts on a real DuckDB file: schema changes (added, missing, renamed, type
changed) and empty files each give a named outcome, quarantine the batch whole, lose no row."""
import datetime as dt
import json

import pytest

from pipelines.catalog.loader import load_catalog
from pipelines.config import DEFAULT_CATALOG
from pipelines.ingest.landing import check_schema, ingest_source
from pipelines.ingest.readers import RawBatch
from pipelines.quality import contracts
from pipelines.warehouse import connect

CATALOG = load_catalog(DEFAULT_CATALOG)
AS_OF = dt.date(2026, 11, 15)
HEADER = "kpi_code,month,provider,value,numerator,denominator"


def land(wh, data_dir, source_id="health_returns", run_id="r1"):
    with connect(wh) as con:
        return ingest_source(con, CATALOG, source_id, data_dir, AS_OF, run_id)


def rows(wh, sql, params=None):
    with connect(wh, read_only=True) as con:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def health_file(tmp_path, name, text):
    folder = tmp_path / "data" / "health"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return tmp_path / "data"


def assert_whole_batch_quarantined(wh, batch, reason):
    """Named reason on every row, raw records kept: rows in = rows quarantined, none landed."""
    assert batch.rows_accepted == 0 and batch.rows_quarantined == batch.rows_in > 0
    assert batch.reasons == {reason: batch.rows_in}
    q = rows(wh, "select row_number, record from raw.quarantine where batch_id = ? order by row_number", [batch.batch_id])
    assert [r["row_number"] for r in q] == list(range(1, batch.rows_in + 1))
    assert all(json.loads(r["record"]) for r in q)
    assert rows(wh, "select count(*) n from raw.observations")[0]["n"] == 0


def test_column_added_is_a_named_schema_change(tmp_path, demo_data):
    body = (demo_data / "health" / "returns_2026-10.csv").read_text().splitlines()
    text = "\n".join([body[0] + ",notes"] + [line + ",ok" for line in body[1:]]) + "\n"
    [batch] = land(tmp_path / "w.duckdb", health_file(tmp_path, "added.csv", text)).batches
    assert_whole_batch_quarantined(tmp_path / "w.duckdb", batch, "schema_change")
    [check] = [o for o in batch.outcomes if o.check_name == "schema_contract"]
    assert not check.success and check.severity == "critical"
    assert check.observed == "column added 'notes'"
    assert "contract source_health_returns" in check.expected
    [stored] = rows(tmp_path / "w.duckdb", "select verdict, changes, run_id from quality.batch_schemas")
    assert stored == {"verdict": "changed", "changes": "column added 'notes'", "run_id": "r1"}


def test_type_change_is_a_named_schema_change(tmp_path):
    # The value column now holds bands ("high", "low") instead of numbers.
    lines = [HEADER] + [f"delayed_discharges,2026-10,RH{i},{'high' if i % 2 else 'low'},," for i in range(1, 5)]
    [batch] = land(tmp_path / "w.duckdb", health_file(tmp_path, "typed.csv", "\n".join(lines) + "\n")).batches
    assert_whole_batch_quarantined(tmp_path / "w.duckdb", batch, "schema_change")
    [check] = [o for o in batch.outcomes if o.check_name == "schema_contract"]
    assert check.observed == "column 'value' changed type number → string"
    detail = rows(tmp_path / "w.duckdb", "select distinct detail from raw.quarantine")[0]["detail"]
    assert "changed type number → string" in detail


def test_a_few_bad_cells_are_bad_rows_not_a_type_change(tmp_path):
    lines = [HEADER] + [f"delayed_discharges,2026-10,RH{i},{200 + i},," for i in range(1, 5)]
    lines.append("delayed_discharges,2026-09,RH1,12x,,")
    [batch] = land(tmp_path / "w.duckdb", health_file(tmp_path, "cells.csv", "\n".join(lines) + "\n")).batches
    assert batch.reasons == {"unparseable_number": 1} and batch.rows_accepted == 4


def test_renamed_mapped_column_names_the_rename(tmp_path, demo_data):
    text = (demo_data / "health" / "returns_2026-10.csv").read_text().replace("provider,", "organisation,", 1)
    [batch] = land(tmp_path / "w.duckdb", health_file(tmp_path, "renamed.csv", text)).batches
    # A mapped column is missing, so the rows cannot even be read: the existing named reason.
    assert_whole_batch_quarantined(tmp_path / "w.duckdb", batch, "missing_column")
    [schema] = [o for o in batch.outcomes if o.check_name == "schema_contract"]
    assert schema.observed == "column renamed 'provider' → 'organisation'"
    [q] = rows(tmp_path / "w.duckdb", "select distinct detail from raw.quarantine")
    assert q["detail"].startswith("column renamed 'provider' → 'organisation'; missing column(s) 'provider'")


@pytest.mark.parametrize("text, detail", [
    (HEADER + "\n", "no data rows (columns: 'kpi_code', 'month', 'provider', 'value', 'numerator', 'denominator')"),
    ("", "no data rows (columns: no header either)"),
    (HEADER + "\n,,,,,\n\n", "no data rows (columns: 'kpi_code', 'month', 'provider', 'value', 'numerator', 'denominator')"),
])
def test_empty_file_is_a_named_outcome(tmp_path, text, detail):
    wh = tmp_path / "w.duckdb"
    [batch] = land(wh, health_file(tmp_path, "empty.csv", text)).batches
    # Like an unreadable file, the empty file is the one input unit, quarantined with its reason.
    assert (batch.rows_in, batch.rows_accepted, batch.rows_quarantined) == (1, 0, 1)
    assert batch.reasons == {"empty_batch": 1}
    [check] = batch.outcomes
    assert (check.check_name, check.success, check.severity, check.observed) == ("not_empty", False, "warn", detail)
    [q] = rows(wh, "select row_number, reason, detail from raw.quarantine")
    assert q == {"row_number": None, "reason": "empty_batch", "detail": detail}
    [b] = rows(wh, "select rows_in, rows_accepted, rows_quarantined, run_id from raw.batches")
    assert b == {"rows_in": 1, "rows_accepted": 0, "rows_quarantined": 1, "run_id": "r1"}


def test_the_demo_matches_its_contracts(tmp_path, demo_data):
    wh = tmp_path / "w.duckdb"
    for sid in CATALOG.sources:
        report = land(wh, demo_data, sid)
        for b in report.batches:
            [check] = [o for o in b.outcomes if o.check_name == "schema_contract"]
            assert check.success, (sid, check.observed)
    stored = rows(wh, "select source_id, verdict, compared_with from quality.batch_schemas order by 1, 2")
    assert {r["verdict"] for r in stored} == {"matches"}
    gx = rows(wh, "select distinct suite from quality.gx_validation_results order by 1")
    assert [r["suite"] for r in gx] == ["source_employment_return", "source_health_returns", "source_transport_db"]
    suites = rows(wh, "select distinct suite from quality.check_results order by 1")
    assert [r["suite"] for r in suites] == ["kpiwatch", "source_employment_return", "source_health_returns",
                                            "source_transport_db"]


def test_without_a_contract_the_previous_batch_is_the_reference():
    def batch(columns, records):
        return RawBatch("housing_returns", "f.csv", "sha", None, columns, records)

    first = batch(["indicator", "month", "value"], [{"indicator": "k", "month": "2026-10", "value": "3"}])
    verdict = check_schema(first, "housing_returns", None)
    assert verdict.verdict == "baseline" and verdict.observed == [("indicator", "string"), ("month", "period"),
                                                                  ("value", "number")]
    second = batch(["indicator", "month", "value", "notes"],
                   [{"indicator": "k", "month": "2026-11", "value": "4", "notes": "x"}])
    verdict = check_schema(second, "housing_returns", ("housing_returns:abc", first_schema := verdict.observed))
    assert verdict.verdict == "changed" and verdict.compared_with == "batch housing_returns:abc"
    assert verdict.describe() == "column added 'notes'"
    assert check_schema(first, "housing_returns", ("housing_returns:abc", first_schema)).verdict == "matches"


@pytest.mark.parametrize("observed, changes", [
    ([("a", "string"), ("b", "number")], []),
    ([("a", "string")], ["column missing 'b'"]),
    ([("a", "string"), ("b", "number"), ("c", "string")], ["column added 'c'"]),
    ([("a", "string"), ("B", "number")], ["column renamed 'b' → 'B'"]),
    ([("a", "string"), ("b", "string")], ["column 'b' changed type number → string"]),
    ([("a", "number"), ("b", "empty")], []),  # string accepts anything; an empty column fits any type
    ([("x", "period"), ("b", "number")], ["column renamed 'a' → 'x'"]),
])
def test_compare_schema_by_name(observed, changes):
    expected = [("a", "string"), ("b", "number")]
    assert [c.describe() for c in contracts.compare_schema(expected, observed)] == changes


def test_infer_schema_majority_and_cell_types():
    records = [{"n": "1,200", "p": "2026-Q3", "d": dt.datetime(2026, 1, 1), "s": "RH1", "e": None, "x": v}
               for v in ("1", "2", "3", "4", "five")]
    assert contracts.infer_schema(["n", "p", "d", "s", "e", "x", ""], records) == [
        ("n", "number"), ("p", "period"), ("d", "period"), ("s", "string"), ("e", "empty"), ("x", "number")]


def test_every_committed_suite_loads_and_sources_fall_back_to_the_default():
    for name in contracts.all_suite_names():
        suite = contracts.load_suite(name)
        assert suite["expectations"] and all(e["meta"]["severity"] in ("critical", "warn") for e in suite["expectations"])
    assert contracts.source_suite_name("health_returns") == "source_health_returns"
    assert contracts.source_suite_name("housing_returns") == "landed_observations"
    assert contracts.source_suite_name("../etc") == "landed_observations"
