"""Do kpiwatch's marts and the baseline's hold the same figures, row for row?

Floating-point sums may be added in another order by dbt's plan and the baseline's, so
measures are compared rounded to ROUND decimals; everything else exactly.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

ROUND = 6

# (name, kpiwatch query, baseline query): the same columns, in the same order.
PAIRS = [
    ("kpi_progress",
     f"""select kpi_id, period, round(actual, {ROUND}), round(numerator, {ROUND}), round(denominator, {ROUND}),
                round(expected_value, {ROUND}), round(performance_gap, {ROUND}), status, previous_status, is_latest
         from marts.fct_kpi_progress""",
     f"""select kpi_id, period, round(actual, {ROUND}), round(numerator, {ROUND}), round(denominator, {ROUND}),
                round(expected_value, {ROUND}), round(performance_gap, {ROUND}), status, previous_status, is_latest
         from marts.kpi_progress"""),
    ("kpi_org_values",
     f"""select kpi_id, org_id, period, round(actual, {ROUND}), round(numerator, {ROUND}), round(denominator, {ROUND}),
                rows_combined, round(expected_value, {ROUND}), round(performance_gap, {ROUND}), status
         from marts.fct_kpi_org_values""",
     f"""select kpi_id, org_id, period, round(actual, {ROUND}), round(numerator, {ROUND}), round(denominator, {ROUND}),
                rows_combined, round(expected_value, {ROUND}), round(performance_gap, {ROUND}), status
         from marts.kpi_org_values"""),
    ("quarantine_by_reason",
     "select source_id, reason, count(*) from raw.quarantine group by all",
     "select source_id, reason, count(*) from raw.quarantine group by all"),
    ("batches",
     "select batch_id, rows_in, rows_accepted, rows_quarantined from raw.batches",
     "select batch_id, rows_in, rows_accepted, rows_quarantined from raw.batches"),
    ("overdue_sources",
     "select source_id from marts.fct_source_freshness where is_overdue",
     "select source_id from checks.source_freshness where overdue"),
]


def compare(kpiwatch_db: Path, baseline_db: Path) -> dict[str, dict]:
    """Per pair: rows on each side and the rows only one side has (first few shown)."""
    out = {}
    with duckdb.connect(str(kpiwatch_db), read_only=True) as kw, duckdb.connect(str(baseline_db), read_only=True) as bl:
        for name, kw_sql, bl_sql in PAIRS:
            a = sorted(kw.execute(kw_sql).fetchall(), key=repr)
            b = sorted(bl.execute(bl_sql).fetchall(), key=repr)
            sa, sb = set(a), set(b)
            out[name] = {"kpiwatch_rows": len(a), "baseline_rows": len(b), "equal": a == b,
                         "only_kpiwatch": [list(map(str, r)) for r in sorted(sa - sb, key=repr)[:5]],
                         "only_baseline": [list(map(str, r)) for r in sorted(sb - sa, key=repr)[:5]]}
    return out
