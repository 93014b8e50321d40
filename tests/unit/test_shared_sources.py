"""A council's corporate return, landed on a real DuckDB file with the real GX suite: one shared
source feeding the KPIs of several departments, KPI codes as written (`CS01`), `N/A` cells,
per-KPI value rules and rejection limits that make sense for small batches (issue 21)."""
import datetime as dt

import pytest

from pipelines.catalog.loader import CatalogError, load_catalog
from pipelines.catalog.tables import write_catalog as write_tables
from pipelines.ingest.landing import ingest_source
from pipelines.quality.publish import blocking_source_checks
from pipelines.warehouse import connect
from tests.support.catalogs import kpi, write_catalog

AS_OF = dt.date(2026, 11, 15)
DEPARTMENTS = [{"id": "customer_services", "name": "Customer services"},  # no channels: optional
               {"id": "planning", "name": "Planning"}]
HEADER = "Service,Code,Measure,Period,Actual\n"


def council(tmp_path, source_over=None, kpi_over=None, settings=None):
    """One shared source `corporate` (no department) feeding CS01 (customer services) and
    PL01 / PL02 (planning)."""
    source = {"id": "corporate", "kind": "csv", "path": "in/*.csv", "cadence": "monthly",
              "columns": {"kpi_id": "Code", "period": "Period", "value": "Actual"},
              "missing_markers": ["N/A"], **(source_over or {})}
    kpis = [kpi("calls_answered", "corporate", "customer_services", code="CS01"),
            kpi("days_behind", "corporate", "planning", code="PL01", allow_negative=True, unit="days"),
            kpi("appeals_won", "corporate", "planning", code="PL02", unit="%")]
    for k in kpis:
        k.update((kpi_over or {}).get(k["id"], {}))
    directory = write_catalog(tmp_path / "catalog", [source], kpis, departments=DEPARTMENTS)
    if settings:
        import yaml

        (directory / "kpiwatch.yml").write_text(yaml.safe_dump({"name": "council", "as_of": "2026-11-15", **settings}))
    (tmp_path / "data" / "in").mkdir(parents=True, exist_ok=True)
    return load_catalog(directory)


def drop(tmp_path, name, text):
    (tmp_path / "data" / "in" / name).write_text(text)


def land(tmp_path, catalog, run_id="r1"):
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest_source(con, catalog, "corporate", tmp_path / "data", AS_OF, run_id)
        write_tables(con, catalog, AS_OF)
    return report


def query(tmp_path, sql):
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_source_without_department_is_shared(tmp_path):
    catalog = council(tmp_path)
    assert catalog.source_departments("corporate") == ["customer_services", "planning"]
    drop(tmp_path, "2026-09.csv", HEADER + "Customers,CS01,Calls answered,2026-09,812\n"
                                            "Planning,PL01,Days behind,2026-09,-28\n"
                                            "Planning,pl02,Appeals won,2026-09,61.5\n")  # pl02: not a code as written
    report = land(tmp_path, catalog)
    (batch,) = report.batches
    assert (batch.rows_accepted, batch.reasons) == (2, {"unknown_kpi_id": 1})
    # each landed row carries its KPI's department; the batch belongs to no one department
    assert sorted(query(tmp_path, "select kpi_id, department_id, value from raw.observations")) == [
        ("calls_answered", "customer_services", 812.0), ("days_behind", "planning", -28.0)]
    assert query(tmp_path, "select department_id from raw.batches") == [(None,)]
    assert query(tmp_path, "select department_id, reason from raw.quarantine") == [(None, "unknown_kpi_id")]


def test_a_kpi_on_another_departments_source_is_refused_with_the_rule(tmp_path):
    with pytest.raises(CatalogError) as err:
        council(tmp_path, source_over={"department": "customer_services"})
    problems = [str(p) for p in err.value.problems]
    assert len(problems) == 2  # PL01 and PL02
    assert "source 'corporate' belongs to department 'customer_services', not 'planning'" in problems[0]
    assert "leave out the source's 'department' to make it shared" in problems[0]


def test_kpi_codes_name_one_kpi(tmp_path):
    with pytest.raises(CatalogError, match="code 'CS01' is already the code of KPI 'calls_answered'"):
        council(tmp_path, kpi_over={"appeals_won": {"code": "CS01"}})
    with pytest.raises(CatalogError, match="code 'calls_answered' is already the id of KPI 'calls_answered'"):
        council(tmp_path, kpi_over={"appeals_won": {"code": "calls_answered"}})


def test_kpi_ids_still_match_beside_codes(tmp_path):
    catalog = council(tmp_path)
    drop(tmp_path, "2026-09.csv", HEADER + "Customers,calls_answered,Calls answered,2026-09,800\n"
                                            "Customers,CS01,Calls answered,2026-08,790\n")
    (batch,) = land(tmp_path, catalog).batches
    assert batch.rows_accepted == 2
    assert query(tmp_path, "select distinct kpi_id from raw.observations") == [("calls_answered",)]


def test_a_missing_marker_is_a_missing_value_not_a_type_change(tmp_path):
    catalog = council(tmp_path)
    drop(tmp_path, "2026-08.csv", HEADER + "Customers,CS01,Calls,2026-08,800\nPlanning,PL01,Days,2026-08,-3\n"
                                            "Planning,PL02,Appeals,2026-08,55\nPlanning,PL02,Appeals,2026-07,50\n")
    land(tmp_path, catalog)
    # four rows, one N/A: 75% numbers -- under the 80% majority were the marker counted as text
    drop(tmp_path, "2026-09.csv", HEADER + "Customers,CS01,Calls,2026-09,N/A\nPlanning,PL01,Days,2026-09,-2\n"
                                            "Planning,PL02,Appeals,2026-09,57\nCustomers,CS01,Calls,2026-07,780\n")
    report = land(tmp_path, catalog, "r2")
    (batch,) = report.batches
    assert batch.schema.verdict == "matches", batch.schema.describe()
    assert (batch.rows_accepted, batch.reasons) == (3, {"missing_value": 1})
    assert query(tmp_path, "select department_id, reason, detail from raw.quarantine") == [
        ("customer_services", "missing_value", "value='N/A' marks a missing value")]
    failed = {o.check_name for o in batch.outcomes if not o.success}
    assert failed == {"values_parseable"}  # a warning: one missing value does not block
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert blocking_source_checks(con) == {}


def test_a_marker_only_column_is_empty_and_the_schema_still_matches(tmp_path):
    from pipelines.quality.contracts import infer_schema

    records = [{"v": "N/A"}, {"v": " N/A "}, {"v": ""}, {"v": "12"}, {"v": "N/A"}]
    assert infer_schema(["v"], records, ["N/A"]) == [("v", "number")]
    assert infer_schema(["v"], records) == [("v", "string")]  # without the source's markers: text
    assert infer_schema(["v"], [{"v": "N/A"}], ["N/A"]) == [("v", "empty")]


def test_value_rules_come_from_each_kpi(tmp_path):
    catalog = council(tmp_path, kpi_over={"calls_answered": {"max": 1000}, "days_behind": {"min": -60}})
    drop(tmp_path, "2026-09.csv", HEADER
         + "Customers,CS01,Calls,2026-09,-5\n"       # negatives refused by default: negative_value
         + "Customers,CS01,Calls,2026-08,1200\n"     # above the KPI's max: out_of_range
         + "Customers,CS01,Calls,2026-07,999\n"
         + "Planning,PL01,Days,2026-09,-28\n"        # allow_negative
         + "Planning,PL01,Days,2026-08,-61\n"        # below the KPI's min: out_of_range
         + "Planning,PL02,Appeals,2026-09,100.5\n"   # unit '%': a percentage, 0-100
         + "Planning,PL02,Appeals,2026-08,99.5\n")
    (batch,) = land(tmp_path, catalog).batches
    assert batch.reasons == {"negative_value": 1, "out_of_range": 3}
    rows = dict(query(tmp_path, "select row_number, detail from raw.quarantine"))
    assert rows[1] == "failed value_non_negative (value=-5; the KPI's values must be between 0 and 1000)"
    assert rows[2] == "failed value_at_most_max (value=1200; the KPI's values must be between 0 and 1000)"
    assert rows[5] == "failed value_at_least_min (value=-61; the KPI's values must be at least -60)"
    assert rows[6] == "failed value_at_most_max (value=100.5; the KPI's values must be between 0 and 100)"
    assert sorted(query(tmp_path, "select kpi_id, value from raw.observations")) == [
        ("appeals_won", 99.5), ("calls_answered", 999.0), ("days_behind", -28.0)]


def test_catalog_default_allows_negatives(tmp_path):
    catalog = council(tmp_path, settings={"defaults": {"allow_negative": True}})
    drop(tmp_path, "2026-09.csv", HEADER + "Customers,CS01,Calls,2026-09,-5\nPlanning,PL02,Appeals,2026-09,-1\n")
    (batch,) = land(tmp_path, catalog).batches
    # the catalog-wide allow_negative lifts the sign rule for every KPI, percentages too (a -1% change)
    assert batch.rows_accepted == 2


def _rates(batch):
    return {o.department_id: (o.success, o.observed) for o in batch.outcomes if o.check_name == "rejection_rate"}


def test_small_batches_need_min_rows_rejected_to_block(tmp_path):
    catalog = council(tmp_path)
    # customer services: 2 of its 3 rows missing (67%) but under min_rows 3: not a broken feed
    drop(tmp_path, "2026-09.csv", HEADER + "Customers,CS01,Calls,2026-09,N/A\nCustomers,CS01,Calls,2026-08,N/A\n"
                                            "Customers,CS01,Calls,2026-07,700\nPlanning,PL02,Appeals,2026-09,50\n")
    (batch,) = land(tmp_path, catalog).batches
    assert _rates(batch) == {"customer_services": (True, "customer_services's rows: 66.7% of 3 rows rejected (2 rows)"),
                             "planning": (True, "planning's rows: 0.0% of 1 rows rejected (0 rows)")}


def test_a_shared_sources_rejection_rate_blocks_only_the_department_concerned(tmp_path):
    catalog = council(tmp_path)
    drop(tmp_path, "2026-09.csv", HEADER
         + "".join(f"Customers,CS01,Calls,2026-0{m},N/A\n" for m in (5, 6, 7))
         + "Customers,CS01,Calls,2026-08,700\n"
         + "".join(f"Planning,PL02,Appeals,2026-0{m},50\n" for m in (5, 6, 7, 8, 9)))
    (batch,) = land(tmp_path, catalog).batches
    rates = _rates(batch)
    assert rates["customer_services"] == (False, "customer_services's rows: 75.0% of 4 rows rejected (3 rows)")
    assert rates["planning"][0] is True
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        blocked = blocking_source_checks(con)
    assert sorted(blocked) == ["customer_services"]
    assert [b["check_name"] for b in blocked["customer_services"]] == ["rejection_rate"]


def test_a_refused_shared_batch_blocks_every_department_it_feeds(tmp_path):
    catalog = council(tmp_path)
    drop(tmp_path, "2026-09.csv", "Service,Measure,Period,Actual\nCustomers,Calls,2026-09,700\n")  # no Code column
    (batch,) = land(tmp_path, catalog).batches
    assert batch.reasons == {"missing_column": 1}
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        blocked = blocking_source_checks(con)
    assert sorted(blocked) == ["customer_services", "planning"]


def test_rejection_limits_per_source_and_catalog(tmp_path):
    from pipelines.ingest.landing import rejection_limits

    assert rejection_limits(council(tmp_path).sources["corporate"], council(tmp_path)) == (0.25, 3)
    catalog = council(tmp_path / "b", source_over={"rejection": {"min_rows": 1}},
                      settings={"rejection": {"max_share": 0.5, "min_rows": 5}})
    assert rejection_limits(catalog.sources["corporate"], catalog) == (0.5, 1)
    drop(tmp_path / "b", "2026-09.csv", HEADER + "Customers,CS01,Calls,2026-09,N/A\nCustomers,CS01,Calls,2026-08,N/A\n"
                                                 "Customers,CS01,Calls,2026-07,700\nPlanning,PL02,Appeals,2026-09,50\n")
    (batch,) = land(tmp_path / "b", catalog).batches
    assert _rates(batch)["customer_services"][0] is False  # 2 of 3 > 50%, and at least 1 row


def test_a_shared_sources_asset_is_owned_by_every_department_it_feeds(tmp_path):
    from pipelines.ingest.assets import build_ingest_asset

    catalog = council(tmp_path)
    departments = {"customer_services": {"head": {"name": "Head", "email": "head@council.example"}}, "planning": {}}
    asset = build_ingest_asset("corporate", catalog.sources["corporate"], departments)
    spec = next(iter(asset.specs))
    assert spec.tags["department"] == "shared"
    assert list(spec.owners) == ["head@council.example", "team:planning"]
    assert "shared by departments customer_services, planning" in spec.description


def test_a_marker_in_the_target_column_is_no_target_not_a_lost_row(tmp_path):
    catalog = council(tmp_path, source_over={"columns": {"kpi_id": "Code", "period": "Period", "value": "Actual",
                                                         "target": "Target"}})
    drop(tmp_path, "2026-09.csv", "Code,Period,Actual,Target\nCS01,2026-09,812,N/A\nCS01,2026-08,N/A,800\n")
    (batch,) = land(tmp_path, catalog).batches
    assert (batch.rows_accepted, batch.reasons) == (1, {"missing_value": 1})  # a missing value is still missing
    assert query(tmp_path, "select value, target from raw.observations") == [(812.0, None)]
