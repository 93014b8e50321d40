"""KPIs with no figure for the period due by as_of (docs/kpi-model.md, "A missing period").

marts.dim_kpis says which period each KPI is due to have a figure for (int_kpi_due: its
frequency, its source's lag_days, as_of) and whether it has none. A KPI of an overdue source is
left to the source's own "overdue" marking (its latest figure stays, data stale). This module finds why: the
rows of raw.quarantine that name the KPI (its id or its code) and the due period (in any form
the period model reads: `2014/15 Q2`, `2014-07`, ...), or that come from a batch whose landed
rows all have that KPI or that period (a constant KPI in the mapping, a title cell), as
`kpiwatch explain` does for a figure's own batches. The status table, the scorecard and
`explain` then say "no figure for 2014/15 Q2 (1 row quarantined: missing_value)" -- never the
previous figure as the current one.
"""
from __future__ import annotations

import datetime as dt
import json

from kpimodel import periods as period_model
from pipelines.warehouse import rows as _rows
from pipelines.warehouse import table_exists as _exists

# quarantined rows read per source when looking for a missing period's rows (newest first)
SCANNED_ROWS = 20_000


def _cells(record: str | None) -> list[str]:
    if not record:
        return []
    try:
        parsed = json.loads(record)
    except ValueError:
        return [record]
    if isinstance(parsed, dict):
        return [str(v).strip() for v in parsed.values() if v is not None]
    if isinstance(parsed, list):
        return [str(v).strip() for v in parsed if v is not None]
    return [str(parsed)]


def _is_period(text: str, period: dt.date, frequency: str, fiscal_start_month: int, memo: dict) -> bool:
    if not text or len(text) > 40 or not any(ch.isdigit() for ch in text):
        return False
    key = (text, frequency, fiscal_start_month)
    if key not in memo:
        try:
            memo[key] = period_model.parse(text, frequency, fiscal_start_month)
        except period_model.PeriodError:
            memo[key] = None
    return memo[key] == period


def _source_rows(con, source_id: str, cache: dict) -> tuple[list[dict], dict]:
    """A source's quarantined rows (newest first, at most SCANNED_ROWS) with their cells, and
    per batch its landed rows' single KPI / period; read once per source."""
    if source_id not in cache:
        rows = _rows(con, """select q.batch_id, q.row_number, q.reason, q.detail, q.record, q.loaded_at
                             from raw.quarantine q where q.source_id = ?
                             order by q.loaded_at desc, q.batch_id, q.row_number limit ?""", [source_id, SCANNED_ROWS])
        for q in rows:
            q["cells"] = _cells(q["record"])
        batch_ids = sorted({r["batch_id"] for r in rows})
        only = {r["batch_id"]: r for r in _rows(con, """
                select batch_id, count(distinct kpi_id) as kpis, min(kpi_id) as kpi_id,
                       count(distinct period) as periods, min(period) as period
                from raw.observations where batch_id = any(?) group by batch_id""", [batch_ids])} if batch_ids else {}
        cache[source_id] = (rows, only)
    return cache[source_id]


def quarantined_for(con, kpi: dict, period: dt.date, cache: dict | None = None) -> list[dict]:
    """raw.quarantine rows of the KPI's source that concern the KPI and `period`. `kpi` has
    kpi_id, source_id, frequency, fiscal_start_month and (optionally) code."""
    if not _exists(con, "raw", "quarantine"):
        return []
    cache = {} if cache is None else cache
    rows, only = _source_rows(con, kpi["source_id"], cache)
    memo = cache.setdefault("_periods", {})
    names = {str(kpi["kpi_id"]).casefold()} | ({str(kpi["code"]).casefold()} if kpi.get("code") else set())
    fiscal = kpi.get("fiscal_start_month") or 1
    out = []
    for q in rows:
        one = only.get(q["batch_id"]) or {}
        same_kpi = any(c.casefold() in names for c in q["cells"]) \
            or (one.get("kpis") == 1 and one.get("kpi_id") == kpi["kpi_id"])
        if same_kpi and (any(_is_period(c, period, kpi["frequency"], fiscal, memo) for c in q["cells"])
                         or (one.get("periods") == 1 and one.get("period") == period)):
            out.append({x: q[x] for x in ("batch_id", "row_number", "reason", "detail", "record", "loaded_at")})
    return sorted(out, key=lambda q: (q["loaded_at"], q["batch_id"], q["row_number"] or 0))


def no_figure_text(label: str, quarantined: list[dict]) -> str:
    """"no figure for 2014/15 Q2 (1 row quarantined: missing_value)"."""
    if not quarantined:
        return f"no figure for {label} (none received)"
    reasons: dict[str, int] = {}
    for q in quarantined:
        reasons[q["reason"]] = reasons.get(q["reason"], 0) + 1
    n = len(quarantined)
    return (f"no figure for {label} ({n} row{'s' if n != 1 else ''} quarantined: "
            + ", ".join(r if c == 1 or len(reasons) == 1 else f"{r} × {c}" for r, c in sorted(reasons.items())) + ")")


def missing_figures(con, kpi_id: str | None = None) -> dict[str, dict]:
    """Per KPI (or the one KPI asked for) without a figure for its due period: {due_period,
    due_label, latest_period, quarantined: [...], text}. Empty before the marts exist."""
    if not _exists(con, "marts", "dim_kpis"):
        return {}
    have = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'marts' and table_name = 'dim_kpis'").fetchall()}
    if "figure_missing" not in have:
        return {}
    out: dict[str, dict] = {}
    cache: dict = {}
    # A KPI of an overdue source keeps its latest figure marked stale ("source ... overdue:
    # latest period ..., expected ..."): the whole delivery is late, which that already says.
    overdue = "" if not _exists(con, "marts", "fct_source_freshness") else \
        " and k.source_id not in (select source_id from marts.fct_source_freshness where is_overdue)"
    for k in _rows(con, """select k.kpi_id, k.kpi_code as code, k.source_id, k.frequency, k.fiscal_start_month,
                                  k.due_period, k.latest_period
                           from marts.dim_kpis k where k.figure_missing""" + overdue
                   + (" and k.kpi_id = ?" if kpi_id else "") + " order by k.kpi_id", [kpi_id] if kpi_id else None):
        label = period_model.label(k["due_period"], k["frequency"], k["fiscal_start_month"])
        quarantined = quarantined_for(con, k, k["due_period"], cache)
        out[k["kpi_id"]] = {
            "due_period": k["due_period"], "due_label": label, "latest_period": k["latest_period"],
            "latest_label": period_model.label(k["latest_period"], k["frequency"], k["fiscal_start_month"])
            if k["latest_period"] else None,
            "quarantined": [{x: q[x] for x in ("batch_id", "row_number", "reason", "detail")} for q in quarantined],
            "text": no_figure_text(label, quarantined),
        }
    return out
