"""Where a KPI figure came from: the source rows behind it, their files, hashes, batches, runs
and the checks those batches went through. Shared by the publish step (which stores it with
each published figure), `kpiwatch explain` and the audit report."""
from __future__ import annotations

import datetime as dt

from pipelines.warehouse import rows as _rows


def contributing_rows(con, pairs: list[tuple[str, dt.date]]) -> dict[tuple[str, dt.date], list[dict]]:
    """For each (kpi_id, period): the latest revision of each organisation's row (the same rule
    as dbt's int_observations__latest_revision), with its lineage and the run that landed it."""
    if not pairs:
        return {}
    # The pairs as an inline VALUES list (no temp table: readers may hold a read-only connection).
    values = ", ".join(["(?, cast(? as date))"] * len(pairs))
    rows = _rows(con, f"""
        select kpi_id, period, org_id, value, numerator, denominator, batch_id, source_id, source_file,
               source_sha256, source_query, row_number, loaded_at, landed_run_id
        from (
            select o.kpi_id, o.period, o.org_id, o.value, o.numerator, o.denominator, o.batch_id,
                   o.source_id, o.source_file, o.source_sha256, o.source_query, o.row_number, o.loaded_at,
                   b.run_id as landed_run_id,
                   row_number() over (
                       partition by o.kpi_id, o.org_id, o.period
                       order by o.loaded_at desc, o.batch_id desc, o.row_number desc) as rn
            from raw.observations o
            join (values {values}) p (kpi_id, period) on p.kpi_id = o.kpi_id and p.period = o.period
            left join raw.batches b on b.batch_id = o.batch_id) ranked
        where rn = 1
        order by kpi_id, period, org_id""", [v for kpi_id, period in pairs for v in (kpi_id, period)])
    out: dict = {}
    for r in rows:
        out.setdefault((r["kpi_id"], r["period"]), []).append(r)
    return out


def batch_checks(con, batch_ids: list[str]) -> dict[str, list[dict]]:
    """Every check result stored for the batches (latest result per check)."""
    if not batch_ids:
        return {}
    ids = sorted(set(batch_ids))
    rows = _rows(con, f"""
        select batch_id, run_id, suite, check_name, severity, success, observed, expected, unexpected_count
        from (
            select *, row_number() over (
                partition by batch_id, suite, check_name, coalesce(column_name, '') order by checked_at desc) as rn
            from quality.check_results
            where batch_id in ({', '.join('?' * len(ids))})) ranked
        where rn = 1
        order by batch_id, suite, check_name""", ids)
    out: dict = {}
    for r in rows:
        out.setdefault(r["batch_id"], []).append(r)
    return out


def figure_evidence(con, pairs: list[tuple[str, dt.date]]) -> dict[tuple[str, dt.date], dict]:
    """A compact, JSON-ready trail per figure: batches (file, sha256, query, run, row numbers,
    checks passed / failed) and the organisation rows."""
    rows = contributing_rows(con, pairs)
    checks = batch_checks(con, [r["batch_id"] for rs in rows.values() for r in rs])
    out = {}
    for key, rs in rows.items():
        batches: dict[str, dict] = {}
        for r in rs:
            b = batches.setdefault(r["batch_id"], {
                "batch_id": r["batch_id"], "source_id": r["source_id"], "source_file": r["source_file"],
                "source_sha256": r["source_sha256"], "source_query": r["source_query"],
                "landed_run_id": r["landed_run_id"], "loaded_at": str(r["loaded_at"]), "rows": [],
            })
            b["rows"].append(r["row_number"])
        for b in batches.values():
            cs = checks.get(b["batch_id"], [])
            b["checks_passed"] = sum(1 for c in cs if c["success"])
            b["checks_failed"] = [f"{c['check_name']} ({c['severity']})" for c in cs if not c["success"]]
        out[key] = {
            "batches": list(batches.values()),
            "organisations": [{"org_id": r["org_id"], "value": r["value"], "numerator": r["numerator"],
                               "denominator": r["denominator"], "batch_id": r["batch_id"],
                               "row_number": r["row_number"]} for r in rs],
        }
    return out
