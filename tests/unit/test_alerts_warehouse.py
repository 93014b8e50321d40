"""A small warehouse for the alerts tests, and a check that it follows docs/warehouse.md.

`build_warehouse(con)` creates the catalog, raw, quality and marts tables the alert rules
read (every documented column, in documented order) with a fixed scenario. Other alert tests
import it; the tests here keep it honest against the contract in docs/warehouse.md.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

DOCS = Path(__file__).resolve().parents[2] / "docs" / "warehouse.md"

TABLES: dict[str, list[tuple[str, str]]] = {
    "catalog.settings": [("as_of", "date")],
    "catalog.departments": [
        ("department_id", "varchar"), ("name", "varchar"), ("channel", "varchar"),
        ("head_name", "varchar"), ("head_slack", "varchar"),
    ],
    "catalog.kpis": [
        ("kpi_id", "varchar"), ("name", "varchar"), ("department_id", "varchar"), ("source_id", "varchar"),
        ("owner_name", "varchar"), ("owner_slack", "varchar"), ("unit", "varchar"), ("direction", "varchar"),
        ("frequency", "varchar"), ("aggregation", "varchar"), ("scale", "double"), ("tolerance", "double"),
        ("trajectory", "varchar"), ("methodology", "varchar"), ("tags", "varchar"),
        ("targets_from", "varchar"), ("fiscal_start_month", "integer"), ("year_to_date", "varchar"),
        ("code", "varchar"), ("tolerance_kind", "varchar"), ("allow_negative", "boolean"),
        ("min_value", "double"), ("max_value", "double"), ("decimals", "integer"),
    ],
    "raw.batches": [
        ("batch_id", "varchar"), ("source_id", "varchar"), ("department_id", "varchar"),
        ("source_file", "varchar"), ("source_sha256", "varchar"), ("source_query", "varchar"),
        ("rows_in", "integer"), ("rows_accepted", "integer"), ("rows_quarantined", "integer"),
        ("loaded_at", "timestamp"), ("run_id", "varchar"), ("watermark", "varchar"), ("mapping_sha256", "varchar"),
        ("sheet", "varchar"), ("layout", "varchar"), ("period_origin", "varchar"), ("rows_excluded", "integer"),
        ("row_map", "varchar"),
    ],
    "quality.check_results": [
        ("run_id", "varchar"), ("batch_id", "varchar"), ("source_id", "varchar"), ("department_id", "varchar"),
        ("suite", "varchar"), ("check_name", "varchar"), ("expectation_type", "varchar"),
        ("column_name", "varchar"), ("severity", "varchar"), ("success", "boolean"), ("observed", "varchar"),
        ("expected", "varchar"), ("unexpected_count", "integer"), ("checked_at", "timestamp"),
    ],
    "quality.drift_runs": [
        ("run_id", "varchar"), ("detected_at", "timestamp"), ("as_of", "date"), ("findings", "integer"),
    ],
    "quality.drift_findings": [
        ("run_id", "varchar"), ("detected_at", "timestamp"), ("as_of", "date"), ("finding_key", "varchar"),
        ("kind", "varchar"), ("severity", "varchar"), ("department_id", "varchar"), ("source_id", "varchar"),
        ("kpi_id", "varchar"), ("period", "date"), ("observed", "double"), ("expected", "double"),
        ("lower_bound", "double"), ("upper_bound", "double"), ("score", "double"), ("threshold", "double"),
        ("method", "varchar"), ("detail", "varchar"), ("is_latest", "boolean"),
    ],
    "marts.fct_kpi_progress": [
        ("kpi_id", "varchar"), ("kpi_name", "varchar"), ("kpi_code", "varchar"), ("department_id", "varchar"),
        ("source_id", "varchar"), ("period", "date"), ("period_end", "date"), ("actual", "double"), ("numerator", "double"),
        ("denominator", "double"), ("baseline_value", "double"), ("baseline_date", "date"),
        ("target_value", "double"), ("target_date", "date"), ("expected_value", "double"), ("gap", "double"),
        ("performance_gap", "double"), ("status", "varchar"), ("judged_by", "varchar"),
        ("tolerance_amount", "double"), ("target_withdrawn", "boolean"), ("standard_value", "double"), ("band_lower", "double"), ("band_upper", "double"),
        ("standard_effective_from", "date"), ("standard_met", "boolean"),
        ("periods_met_last_12", "integer"), ("periods_judged_last_12", "integer"),
        ("consecutive_misses", "integer"), ("previous_status", "varchar"),
        ("is_latest", "boolean"), ("forecast_value", "double"), ("forecast_status", "varchar"),
        ("forecast_reason", "varchar"), ("trend_periods", "integer"), ("trend_periods_needed", "integer"),
        ("data_trust", "varchar"), ("data_trust_reason", "varchar"), ("latest_batch_id", "varchar"),
    ],
    "marts.fct_milestones": [
        ("milestone_id", "varchar"), ("title", "varchar"), ("department_id", "varchar"), ("kpi_id", "varchar"),
        ("test", "varchar"), ("threshold", "double"), ("due_date", "date"), ("from_date", "date"),
        ("owner_name", "varchar"), ("owner_slack", "varchar"),
        ("latest_actual", "double"), ("latest_period", "date"), ("met_period", "date"),
        ("judged_period", "date"), ("judged_actual", "double"),
        ("forecast_value", "double"), ("state", "varchar"), ("met_how", "varchar"), ("completed_on", "date"),
        ("completed_by", "varchar"), ("days_to_due", "integer"),
    ],
    "marts.fct_source_freshness": [
        ("source_id", "varchar"), ("department_id", "varchar"), ("cadence", "varchar"), ("lag_days", "integer"),
        ("fiscal_start_month", "integer"), ("latest_period", "date"), ("expected_period", "date"), ("is_overdue", "boolean"),
        ("periods_overdue", "integer"), ("last_loaded_at", "timestamp"),
    ],
    "marts.fct_kpi_anomalies": [
        ("kpi_id", "varchar"), ("department_id", "varchar"), ("period", "date"), ("actual", "double"),
        ("change", "double"), ("median_change", "double"), ("mad_change", "double"), ("robust_z", "double"),
        ("is_anomaly", "boolean"), ("is_latest", "boolean"),
    ],
}

AS_OF = date(2026, 4, 20)

ROWS: dict[str, list[dict[str, Any]]] = {
    "catalog.settings": [{"as_of": AS_OF}],
    "catalog.departments": [
        {"department_id": "health", "name": "Health", "channel": "#health-kpis", "head_name": "Hal", "head_slack": "U0HAL"},
        {"department_id": "transport", "name": "Transport", "channel": "C0TRANSPORT"},
        {"department_id": "finance", "name": "Finance", "channel": None},
    ],
    "catalog.kpis": [
        {"kpi_id": "wait_time", "name": "Median wait time", "department_id": "health", "source_id": "health_csv",
         "owner_name": "Ann Owner", "owner_slack": "U0ANN", "unit": "days", "direction": "lower_is_better",
         "frequency": "monthly", "aggregation": "mean", "tolerance": 1.0, "trajectory": "linear",
         "tags": "nhs,waiting"},
        {"kpi_id": "vaccination_rate", "name": "Vaccination rate", "department_id": "health",
         "source_id": "health_csv", "owner_name": "Ann Owner", "owner_slack": "U0ANN", "unit": "%",
         "direction": "higher_is_better", "frequency": "monthly", "aggregation": "ratio", "scale": 100,
         "tolerance": 2.0, "trajectory": "linear", "tags": "nhs"},
        {"kpi_id": "bus_punctuality", "name": "Bus punctuality", "department_id": "transport",
         "source_id": "transport_sql", "owner_name": "Bo Driver", "owner_slack": None, "unit": "%",
         "direction": "higher_is_better", "frequency": "monthly", "aggregation": "ratio", "scale": 100,
         "tolerance": 2.0, "trajectory": "linear", "tags": "buses"},
        {"kpi_id": "budget_variance", "name": "Budget variance", "department_id": "finance",
         "source_id": "finance_xlsx", "owner_name": None, "owner_slack": None, "unit": "GBP",
         "direction": "lower_is_better", "frequency": "quarterly", "aggregation": "sum", "tolerance": 50000,
         "trajectory": "step", "tags": ""},
    ],
    "raw.batches": [
        {"batch_id": "b-health-1", "source_id": "health_csv", "department_id": "health",
         "source_file": "health/2026-02.csv", "rows_in": 10, "rows_accepted": 10, "rows_quarantined": 0,
         "loaded_at": datetime(2026, 3, 10, 9, 0), "run_id": "r1"},
        {"batch_id": "b-health-2", "source_id": "health_csv", "department_id": "health",
         "source_file": "health/2026-03.csv", "rows_in": 10, "rows_accepted": 9, "rows_quarantined": 1,
         "loaded_at": datetime(2026, 4, 10, 9, 0), "run_id": "r2"},
        {"batch_id": "b-finance-1", "source_id": "finance_xlsx", "department_id": "finance",
         "source_file": "finance/q4.xlsx", "rows_in": 4, "rows_accepted": 4, "rows_quarantined": 0,
         "loaded_at": datetime(2026, 1, 20, 9, 0), "run_id": "r0"},
    ],
    "quality.check_results": [
        # An old batch's failure: not the latest batch of its source, so no alert.
        {"run_id": "r1", "batch_id": "b-health-1", "source_id": "health_csv", "department_id": "health",
         "suite": "health_csv", "check_name": "values_between", "expectation_type": "expect_column_values_to_be_between",
         "column_name": "value", "severity": "critical", "success": False, "observed": "3 rows", "expected": "0..365",
         "unexpected_count": 3, "checked_at": datetime(2026, 3, 10, 9, 1)},
        {"run_id": "r2", "batch_id": "b-health-2", "source_id": "health_csv", "department_id": "health",
         "suite": "health_csv", "check_name": "not_null", "expectation_type": "expect_column_values_to_not_be_null",
         "column_name": "value", "severity": "critical", "success": False, "observed": "2 nulls", "expected": "0 nulls",
         "unexpected_count": 2, "checked_at": datetime(2026, 4, 10, 9, 1)},
        {"run_id": "r2", "batch_id": "b-health-2", "source_id": "health_csv", "department_id": "health",
         "suite": "health_csv", "check_name": "row_count", "expectation_type": "expect_table_row_count_to_be_between",
         "column_name": None, "severity": "warn", "success": False, "observed": "10", "expected": ">= 12",
         "unexpected_count": None, "checked_at": datetime(2026, 4, 10, 9, 1)},
        {"run_id": "r2", "batch_id": "b-health-2", "source_id": "health_csv", "department_id": "health",
         "suite": "health_csv", "check_name": "kpi_id_in_catalog", "expectation_type": "expect_column_values_to_be_in_set",
         "column_name": "kpi_id", "severity": "critical", "success": True, "observed": "0", "expected": "0",
         "unexpected_count": 0, "checked_at": datetime(2026, 4, 10, 9, 1)},
        {"run_id": "r0", "batch_id": "b-finance-1", "source_id": "finance_xlsx", "department_id": "finance",
         "suite": "finance_xlsx", "check_name": "not_null", "expectation_type": "expect_column_values_to_not_be_null",
         "column_name": "value", "severity": "critical", "success": True, "observed": "0", "expected": "0",
         "unexpected_count": 0, "checked_at": datetime(2026, 1, 20, 9, 1)},
    ],
    "marts.fct_kpi_progress": [
        {"kpi_id": "wait_time", "kpi_name": "Median wait time", "department_id": "health", "source_id": "health_csv",
         "period": date(2026, 2, 1), "period_end": date(2026, 2, 28), "actual": 16.0, "expected_value": 14.5,
         "target_value": 12.0, "target_date": date(2026, 12, 31), "performance_gap": -1.5, "status": "red",
         "previous_status": "amber", "is_latest": False, "data_trust": "trusted"},
        {"kpi_id": "wait_time", "kpi_name": "Median wait time", "department_id": "health", "source_id": "health_csv",
         "period": date(2026, 3, 1), "period_end": date(2026, 3, 31), "actual": 18.5, "expected_value": 14.0,
         "target_value": 12.0, "target_date": date(2026, 12, 31), "gap": 4.5, "performance_gap": -4.5,
         "status": "red", "previous_status": "red", "is_latest": True, "forecast_value": 16.25,
         "forecast_status": "will_miss", "data_trust": "failed_checks",
         "data_trust_reason": "batch b-health-2 failed not_null", "latest_batch_id": "b-health-2"},
        {"kpi_id": "vaccination_rate", "kpi_name": "Vaccination rate", "department_id": "health",
         "source_id": "health_csv", "period": date(2026, 3, 1), "period_end": date(2026, 3, 31), "actual": 91.0,
         "expected_value": None, "status": "grey", "previous_status": "grey", "is_latest": True,
         "forecast_status": "unknown", "data_trust": "trusted"},
        {"kpi_id": "bus_punctuality", "kpi_name": "Bus punctuality", "department_id": "transport",
         "source_id": "transport_sql", "period": date(2026, 1, 1), "period_end": date(2026, 1, 31), "actual": 88.25,
         "expected_value": 89.5, "target_value": 95.0, "target_date": date(2026, 12, 31), "performance_gap": -1.25,
         "status": "amber", "previous_status": "green", "is_latest": True, "forecast_status": "unknown",
         "data_trust": "stale", "data_trust_reason": "source transport_sql is overdue"},
        {"kpi_id": "budget_variance", "kpi_name": "Budget variance", "department_id": "finance",
         "source_id": "finance_xlsx", "period": date(2025, 10, 1), "period_end": date(2025, 12, 31),
         "actual": 120000.0, "expected_value": 150000.0, "target_value": 100000.0, "target_date": date(2026, 12, 31),
         "performance_gap": 30000.0, "status": "green", "previous_status": "amber", "is_latest": True,
         "forecast_status": "on_track", "data_trust": "trusted"},
    ],
    "marts.fct_milestones": [
        {"milestone_id": "m_bus_2026", "title": "95% of buses on time", "department_id": "transport",
         "kpi_id": "bus_punctuality", "threshold": 95.0, "due_date": date(2026, 12, 31), "owner_name": None,
         "owner_slack": None, "latest_actual": 88.25, "latest_period": date(2026, 1, 1), "forecast_value": 90.1,
         "state": "at_risk", "days_to_due": 255},
        {"milestone_id": "m_wait_q1", "title": "Waits under 15 days by March", "department_id": "health",
         "kpi_id": "wait_time", "threshold": 15.0, "due_date": date(2026, 3, 31), "owner_name": "Mia Lead",
         "owner_slack": "U0MIA", "latest_actual": 18.5, "latest_period": date(2026, 3, 1), "forecast_value": 16.25,
         "state": "missed", "days_to_due": -20},
        {"milestone_id": "m_budget", "title": "Variance under 100k", "department_id": "finance",
         "kpi_id": "budget_variance", "threshold": 100000.0, "due_date": date(2026, 12, 31), "state": "upcoming",
         "days_to_due": 255},
        {"milestone_id": "m_vacc", "title": "Vaccination 90%", "department_id": "health", "kpi_id": "vaccination_rate",
         "threshold": 90.0, "due_date": date(2026, 3, 31), "met_period": date(2026, 3, 1), "state": "met",
         "days_to_due": -20},
    ],
    "marts.fct_source_freshness": [
        {"source_id": "finance_xlsx", "department_id": "finance", "cadence": "quarterly", "lag_days": 45,
         "latest_period": date(2025, 10, 1), "expected_period": date(2026, 1, 1), "is_overdue": True,
         "periods_overdue": 1, "last_loaded_at": datetime(2026, 1, 20, 9, 0)},
        {"source_id": "health_csv", "department_id": "health", "cadence": "monthly", "lag_days": 10,
         "latest_period": date(2026, 3, 1), "expected_period": date(2026, 3, 1), "is_overdue": False,
         "periods_overdue": 0, "last_loaded_at": datetime(2026, 4, 10, 9, 0)},
        {"source_id": "transport_sql", "department_id": "transport", "cadence": "monthly", "lag_days": 15,
         "latest_period": date(2026, 1, 1), "expected_period": date(2026, 3, 1), "is_overdue": True,
         "periods_overdue": 2, "last_loaded_at": None},
    ],
    "marts.fct_kpi_anomalies": [
        {"kpi_id": "wait_time", "department_id": "health", "period": date(2026, 3, 1), "actual": 18.5,
         "change": 2.5, "median_change": -0.25, "mad_change": 0.2, "robust_z": 9.27, "is_anomaly": True,
         "is_latest": True},
        {"kpi_id": "bus_punctuality", "department_id": "transport", "period": date(2025, 12, 1), "actual": 80.0,
         "change": -9.0, "median_change": 0.1, "mad_change": 0.5, "robust_z": -12.3, "is_anomaly": True,
         "is_latest": False},
        {"kpi_id": "budget_variance", "department_id": "finance", "period": date(2025, 10, 1), "actual": 120000.0,
         "change": 1000.0, "median_change": 900.0, "mad_change": 300.0, "robust_z": 0.2, "is_anomaly": False,
         "is_latest": True},
    ],
}

# (rule, subject, channel) the default rules find in ROWS, in evaluation order.
# m_bus_2026 is at risk but due in 255 days: beyond the rule's 180-day horizon (within_days).
EXPECTED_ALERTS = [
    ("kpi_off_trajectory", "bus_punctuality", "C0TRANSPORT"),  # no owner_slack -> department
    ("kpi_off_trajectory", "wait_time", "U0ANN"),
    ("milestone_off_track", "m_wait_q1", "U0MIA"),
    ("source_overdue", "finance_xlsx", "#kpiwatch-alerts"),  # finance has no channel -> fallback
    ("source_overdue", "transport_sql", "C0TRANSPORT"),
    ("critical_check_failed", "health_csv", "#health-kpis"),
    ("sudden_jump", "wait_time", "U0ANN"),
]

# Drift findings (build_warehouse(con, drift=True)): two evaluations; only the latest counts.
DRIFT_ROWS: dict[str, list[dict[str, Any]]] = {
    "quality.drift_runs": [
        {"run_id": "r-old", "detected_at": datetime(2026, 3, 20, 6, 0), "as_of": date(2026, 3, 20), "findings": 1},
        {"run_id": "r-new", "detected_at": datetime(2026, 4, 20, 6, 0), "as_of": AS_OF, "findings": 4},
    ],
    "quality.drift_findings": [
        # an earlier evaluation's finding: not repeated by the latest one, so it does not fire
        {"run_id": "r-old", "detected_at": datetime(2026, 3, 20, 6, 0), "as_of": date(2026, 3, 20),
         "finding_key": "level_shift|transport_sql|bus_punctuality|2026-01-01", "kind": "level_shift",
         "severity": "warning", "department_id": "transport", "source_id": "transport_sql",
         "kpi_id": "bus_punctuality", "period": date(2026, 1, 1), "observed": 80.0, "expected": 89.0,
         "score": 6.5, "threshold": 6.0, "method": "median shift", "detail": "level fell by 9", "is_latest": True},
        {"run_id": "r-new", "detected_at": datetime(2026, 4, 20, 6, 0), "as_of": AS_OF,
         "finding_key": "kpi_outlier|health_csv|wait_time|2026-03-01", "kind": "kpi_outlier",
         "severity": "critical", "department_id": "health", "source_id": "health_csv", "kpi_id": "wait_time",
         "period": date(2026, 3, 1), "observed": 18.5, "expected": 15.8, "lower_bound": 14.9, "upper_bound": 16.7,
         "score": 13.1, "threshold": 12.0, "method": "seasonal robust z", "detail": "18.5 is far above 15.8",
         "is_latest": True},
        {"run_id": "r-new", "detected_at": datetime(2026, 4, 20, 6, 0), "as_of": AS_OF,
         "finding_key": "volume|health_csv||2026-03-01", "kind": "volume", "severity": "warning",
         "department_id": "health", "source_id": "health_csv", "kpi_id": None, "period": date(2026, 3, 1),
         "observed": 130.0, "expected": 100.0, "score": 0.3, "threshold": 0.2, "method": "median volume ±20%",
         "detail": "130 rows against a typical 100", "is_latest": True},
        # an info finding and a kind the default rule leaves to source_overdue: no alert
        {"run_id": "r-new", "detected_at": datetime(2026, 4, 20, 6, 0), "as_of": AS_OF,
         "finding_key": "kpi_outlier|finance_xlsx|budget_variance|2025-10-01", "kind": "kpi_outlier",
         "severity": "info", "department_id": "finance", "source_id": "finance_xlsx", "kpi_id": "budget_variance",
         "period": date(2025, 10, 1), "observed": 1.0, "expected": 1.0, "score": 4.0, "threshold": 6.0,
         "method": "seasonal robust z", "detail": "near the edge", "is_latest": True},
        {"run_id": "r-new", "detected_at": datetime(2026, 4, 20, 6, 0), "as_of": AS_OF,
         "finding_key": "missing_submission|transport_sql||2026-03-01", "kind": "missing_submission",
         "severity": "warning", "department_id": "transport", "source_id": "transport_sql", "kpi_id": None,
         "period": date(2026, 3, 1), "observed": 0.0, "expected": 12.0, "score": 20.0, "threshold": 7.0,
         "method": "cadence + grace", "detail": "2026-03 not received", "is_latest": True},
    ],
}
# (rule, subject, channel) the drift_finding rule finds in DRIFT_ROWS.
EXPECTED_DRIFT_ALERTS = [
    ("drift_finding", "kpi_outlier|health_csv|wait_time|2026-03-01", "U0ANN"),
    ("drift_finding", "volume|health_csv||2026-03-01", "#health-kpis"),  # about a source: department
]


def build_warehouse(con: duckdb.DuckDBPyConnection, drift: bool = False) -> duckdb.DuckDBPyConnection:
    """Create the input tables of the alert rules with the scenario in ROWS (and, with `drift`,
    the drift evaluations in DRIFT_ROWS; without, the drift tables are empty)."""
    for schema in sorted({table.split(".")[0] for table in TABLES}):
        con.execute(f"create schema if not exists {schema}")
    for table, columns in TABLES.items():
        con.execute(f"create or replace table {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
        names = [c for c, _ in columns]
        rows = (DRIFT_ROWS if drift else ROWS).get(table, []) if table in DRIFT_ROWS else ROWS.get(table, [])
        unknown = {key for row in rows for key in row} - set(names)
        assert not unknown, f"{table}: fixture row has undocumented columns {unknown}"
        if rows:
            con.executemany(
                f"insert into {table} values ({', '.join('?' for _ in names)})",
                [[row.get(name) for name in names] for row in rows],
            )
    return con


def documented_columns() -> dict[str, list[str]]:
    """Table -> column names, parsed from the bullet list in docs/warehouse.md."""
    text = DOCS.read_text(encoding="utf-8")
    items = re.split(r"\n(?=- `)", text)
    out: dict[str, list[str]] = {}
    for item in items:
        match = re.match(r"- `(\w+\.\w+)(\(|`)", item)
        if not match:
            continue
        table = match.group(1)
        body = " ".join(item.split())
        if match.group(2) == "(":  # "- `catalog.x(a, b, c)` ..."
            listing = body[body.index("(") + 1 :]
        else:  # "- `marts.x` — ...: `a, b (note), c`": the last code span
            spans = re.findall(r"`([^`]*)`", body)
            if len(spans) < 2 or "," not in spans[-1]:
                continue  # described, not listed (e.g. marts.dim_kpis)
            listing = spans[-1]
        depth, chars = 0, []
        for ch in listing:
            if ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "`" and depth == 0:
                break
            elif depth == 0:
                chars.append(ch)
        out[table] = [part.strip().split()[0] for part in "".join(chars).split(",") if part.strip()]
    return out


def test_fixture_tables_have_exactly_the_documented_columns():
    documented = documented_columns()
    for table, columns in TABLES.items():
        assert table in documented, f"{table} is not in docs/warehouse.md"
        assert [c for c, _ in columns] == documented[table], table


def test_alerting_tables_have_the_documented_columns(tmp_path):
    from alerts.engine import ensure_schema

    documented = documented_columns()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    ensure_schema(con)  # idempotent
    for table in ("alerting.alert_state", "alerting.alert_log", "alerting.outbox", "alerting.silences",
                  "alerting.acks"):
        schema, name = table.split(".")
        actual = [
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
                "order by ordinal_position",
                [schema, name],
            ).fetchall()
        ]
        assert actual == documented[table], table
    con.close()


def test_scenario_builds(tmp_path):
    con = build_warehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    assert con.execute("select count(*) from marts.fct_kpi_progress where is_latest").fetchone()[0] == 4
    con.close()
