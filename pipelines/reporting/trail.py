"""The evidence trail of one KPI figure (`kpiwatch explain KPI_ID PERIOD`): the figure, its
data trust and publication, how it was computed, the source rows behind it (file, sha256,
batch, row numbers, run), superseded revisions, quarantined rows, checks and drift findings."""
from __future__ import annotations

import datetime as dt
import json

from kpimodel import display
from kpimodel import periods as period_model
from pipelines.quality.evidence import batch_checks, contributing_rows
from pipelines.quality.store import columns, exists
from pipelines.warehouse import rows as _rows


class TrailError(ValueError):
    pass


def parse_period(text: str, frequency: str | None = None, fiscal_start_month: int = 4) -> dt.date:
    """'2026-10', '2026-10-01', '2026-Q3', '2019/20 Q1', '2026-W14', '2026', '2019/20' -> the
    period's first day (the period model shared with ingest: kpimodel/periods.py; a fiscal
    quarter of a KPI without its own year start is read in the April year, as ingest reads it)."""
    try:
        return period_model.parse(text, frequency, fiscal_start_month)
    except period_model.PeriodError as exc:
        raise TrailError(f"period {text.strip()[:40]!r} is not a period"
                         + (f" of this {frequency} KPI" if frequency else "")
                         + f" ({exc.detail}; write {period_model.forms(frequency)})") from None


def _one(con, sql: str, params=None) -> dict | None:
    rows = _rows(con, sql, params)
    return rows[0] if rows else None


def kpi_trail(con, kpi_id: str, period: dt.date | str) -> dict:
    """The evidence of one figure; `period` a date or its text in any form of the KPI's frequency."""
    have = columns(con, "catalog", "kpis")
    extra = ", ".join(c if c in have else f"null as {c}" for c in ("code", "decimals", "tolerance", "tolerance_kind"))
    kpi = _one(con, f"""select kpi_id, name, department_id, source_id, unit, direction, frequency, aggregation,
                               scale, owner_name, fiscal_start_month, {extra} from catalog.kpis where kpi_id = ?""", [kpi_id])
    if kpi is None:
        known = ", ".join(r[0] for r in con.execute("select kpi_id from catalog.kpis order by 1").fetchall())
        raise TrailError(f"unknown KPI {kpi_id!r} (known: {known})")
    fiscal = kpi["fiscal_start_month"] or 1
    if isinstance(period, str):
        period = parse_period(period, kpi["frequency"], fiscal)
    label = period_model.label(period, kpi["frequency"], fiscal)
    figure = _one(con, "select * from marts.fct_kpi_progress where kpi_id = ? and period = ?", [kpi_id, period])
    if figure is None:
        from pipelines.reporting.gaps import no_figure_text, quarantined_for

        periods = [r[0] for r in con.execute(
            "select period from marts.fct_kpi_progress where kpi_id = ? order by period desc nulls last limit 6", [kpi_id]).fetchall()]
        quarantined = quarantined_for(con, kpi, period)
        rows = "".join(f"\n  row {q['row_number']} of {q['batch_id']}: {q['reason']} — {q['detail']}; record {q['record']}"
                       for q in quarantined[:SHOWN_ROWS])
        raise TrailError(f"{kpi_id} has " + (no_figure_text(label, quarantined) if quarantined else f"no figure for {label}")
                         + (f" (latest periods: {', '.join(period_model.label(p, kpi['frequency'], fiscal) for p in periods)})"
                            if periods else " (no data landed for it)") + rows)
    rows = contributing_rows(con, [(kpi_id, period)]).get((kpi_id, period), [])
    chosen = {(r["batch_id"], r["row_number"]) for r in rows}
    revisions = [r for r in _rows(con, """
            select o.org_id, o.value, o.numerator, o.denominator, o.batch_id, o.source_file, o.source_sha256,
                   o.row_number, o.loaded_at, b.run_id as landed_run_id
            from raw.observations o left join raw.batches b using (batch_id)
            where o.kpi_id = ? and o.period = ? order by o.org_id, o.loaded_at, o.batch_id, o.row_number""", [kpi_id, period])
        if (r["batch_id"], r["row_number"]) not in chosen]
    batch_ids = sorted({r["batch_id"] for r in rows})
    # Where a batch-level period came from (a title cell, the file name), for warehouses that record it.
    # and each record's row as the sheet shows it (`Commissioner!A135`).
    have = columns(con, "raw", "batches")
    extra = ", ".join(c if c in have else f"null as {c}" for c in ("period_origin", "sheet", "row_map"))
    batches = _rows(con, f"""select batch_id, source_id, source_file, source_sha256, source_query, rows_in,
                                    rows_accepted, rows_quarantined, loaded_at, run_id, {extra}
                             from raw.batches where batch_id = any(?) order by loaded_at, batch_id""", [batch_ids])
    where = {b["batch_id"]: b for b in batches}
    for r in [*rows, *revisions]:
        r["cell"] = cell_of(where.get(r["batch_id"]), r["row_number"])
    checks = batch_checks(con, batch_ids)
    # Quarantined rows of the same batches that name this KPI and period (a rejected duplicate,
    # an unparseable value, ...): what did not make it into the figure.
    # A batch whose landed rows all have one KPI (a constant in the mapping) or one period (a
    # title cell, the file name) gives that KPI or period to its quarantined rows too.
    needle_kpi, needle_period = kpi_id, f"{period:%Y-%m}"
    only = {r["batch_id"]: r for r in _rows(con, """
            select batch_id, count(distinct kpi_id) as kpis, min(kpi_id) as kpi_id,
                   count(distinct period) as periods, min(period) as period
            from raw.observations where batch_id = any(?) group by batch_id""", [batch_ids])}

    def concerns(q: dict) -> bool:
        record, one = q["record"] or "", only.get(q["batch_id"]) or {}
        same_kpi = needle_kpi in record or (one.get("kpis") == 1 and one.get("kpi_id") == kpi_id)
        same_period = needle_period in record or (one.get("periods") == 1 and one.get("period") == period)
        return same_kpi and same_period

    quarantined = [q for q in _rows(con, """
            select q.batch_id, q.row_number, q.reason, q.detail, q.record
            from raw.quarantine q where q.batch_id = any(?) order by q.batch_id, q.row_number""", [batch_ids])
        if concerns(q)]
    for q in quarantined:
        q["cell"] = cell_of(where.get(q["batch_id"]), q["row_number"])
    # Rows the source's row rules left out of these batches (subtotals, national rows): counted
    # per batch and rule, neither in the figure nor rejected.
    excluded = _rows(con, """select batch_id, rule, rows, row_numbers from raw.excluded_rows
                             where batch_id = any(?) order by batch_id, rule""", [batch_ids]) \
        if exists(con, "raw", "excluded_rows") else []
    drift = []
    if exists(con, "quality", "drift_findings"):
        drift = _rows(con, """
            select run_id, kind, severity, observed, expected, score, threshold, method, detail
            from quality.drift_findings
            where run_id = (select run_id from quality.drift_findings order by detected_at desc nulls last limit 1)
              and period = ? and (kpi_id = ? or (kpi_id is null and source_id = ?))
            order by kind, severity, detail""", [period, kpi_id, kpi["source_id"]])
    published, current, decision = [], None, None
    if exists(con, "publish", "kpi_figures"):
        published = _rows(con, """select run_id, published_at, actual, status, data_trust, data_trust_reason
                                  from publish.kpi_figures where kpi_id = ? and period = ? order by published_at, run_id""",
                          [kpi_id, period])
        current = _one(con, "select * from publish.kpi_status where kpi_id = ?", [kpi_id]) \
            if exists(con, "publish", "kpi_status") else None
        decision = _one(con, """select run_id, decided_at, published, reason from publish.decisions
                               where department_id = ? order by decided_at desc nulls last limit 1""", [kpi["department_id"]])
    from pipelines.reporting.gaps import missing_figures

    gap = missing_figures(con, kpi_id).get(kpi_id)
    return {
        "kpi": kpi, "period": period, "period_label": label, "no_figure": gap, "figure": figure, "computation": computation(kpi, rows),
        "rows": rows, "superseded": revisions, "batches": batches, "checks": checks,
        "quarantined": quarantined, "excluded": excluded, "drift": drift, "published": published, "current": current,
        "decision": decision,
    }


def cell_of(batch: dict | None, record: int | None) -> str | None:
    """`Sheet!A135` for a record of a workbook batch (None for other batches)."""
    from pipelines.ingest.readers import sheet_row_of

    row = sheet_row_of((batch or {}).get("row_map"), record)
    return f"{batch['sheet']}!A{row}" if row is not None and batch.get("sheet") else None


def computation(kpi: dict, rows: list[dict]) -> str:
    n = len(rows)
    agg = kpi["aggregation"]
    if agg == "ratio":
        num = sum(r["numerator"] or 0 for r in rows)
        den = sum(r["denominator"] or 0 for r in rows)
        scale = kpi["scale"] or 1
        value = scale * num / den if den else None
        return (f"ratio: {scale:g} × Σ numerator / Σ denominator over {n} organisation(s) = "
                f"{scale:g} × {num:,.0f} / {den:,.0f} = " + (f"{value:,.4f}" if value is not None else "undefined"))
    values = [r["value"] for r in rows if r["value"] is not None]
    if agg == "as_published":
        whole = [r["value"] for r in rows if r.get("org_id") == "ALL" and r["value"] is not None]
        shown = whole[0] if whole else (values[0] if len(rows) == 1 and values else None)
        return ("as published: the figure published for the whole, used as it is (a median or percentile is "
                "never recomputed across organisations) = " + (f"{shown:,.4f}" if shown is not None else "none published"))
    if agg == "latest":
        return f"stock at period end: sum of {len(values)} organisation stock(s) = {sum(values):,.4f}"
    if agg == "mean":
        return f"mean of {len(values)} organisation value(s) = {sum(values) / len(values):,.4f}" if values else "mean of no values"
    return f"sum of {len(values)} organisation value(s) = {sum(values):,.4f}"


# Source rows printed in text; the JSON has all of them.
SHOWN_ROWS = 20


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.4f}".rstrip("0").rstrip(".")
    return str(v)


def figure_line(k: dict, f: dict) -> str:
    """The figure, its status and what it was judged against, with enough decimals never to
    contradict the status: "94.99%, standard not met (standard 95.00%; met in 3 of the last 12
    periods)"."""
    unit = k["unit"] if display.is_percent(k["unit"]) else None
    suffix = "" if unit or not k["unit"] else f" {k['unit']}"
    decimals = k.get("decimals")
    actual, (expected, standard, target) = display.figures(
        f["actual"], [f["expected_value"], f.get("standard_value"), f.get("target_value")], unit, decimals)
    if f.get("judged_by") == "standard":
        text = f"{actual}{suffix}, standard {'met' if f['standard_met'] else 'not met'} (standard {standard}{suffix}"
    elif f.get("expected_value") is None and f.get("standard_value") is None:
        words = display.status_words(f, k.get("tolerance"), k.get("tolerance_kind"), k["unit"])
        return f"{actual}{suffix}, {words} (shown as data only: no target or standard to judge it against)"
    else:
        status = display.status_words(f, k.get("tolerance"), k.get("tolerance_kind"), k["unit"]) \
            if f.get("judged_by") == "trajectory" else f["status"]
        text = (f"{actual}{suffix}, status {status} (expected {expected}{suffix}, "
                f"target {target}{suffix} by {f['target_date']}")
        if f.get("standard_value") is not None:
            text += f"; standard {standard}{suffix} {'met' if f['standard_met'] else 'not met'}"
    if f.get("periods_judged_last_12"):
        text += f"; met in {f['periods_met_last_12']} of the last {f['periods_judged_last_12']} periods"
    forecast = f["forecast_status"]
    if forecast == "unknown" and f.get("forecast_reason"):
        forecast = f"unknown ({f['forecast_reason']})"
    return text + f"), forecast {forecast}"


def render_text(t: dict) -> str:
    k, f = t["kpi"], t["figure"]
    head = k["kpi_id"] if not k.get("code") or k["code"] == k["kpi_id"] else f"{k['code']} ({k['kpi_id']})"
    out = [f"{head} — {k['name']} ({k['department_id']}), period {t['period_label']}",
           "  figure      " + figure_line(k, f),
           f"  computed as {t['computation']}"]
    gap = t.get("no_figure")
    if gap is not None and gap["due_period"] > t["period"]:
        out.append(f"  due period  {gap['text']}: this figure is not current")
    cur = t["current"]
    if cur is not None and cur.get("period") == t["period"]:
        out.append(f"  data trust  {cur['data_trust']} — {cur['data_trust_reason']}")
    else:
        out.append(f"  data trust  {f['data_trust']} (from the landed data) — {f['data_trust_reason']}")
    if t["published"]:
        p = t["published"][-1]
        out.append(f"  published   in run {p['run_id']} at {p['published_at']:%Y-%m-%d %H:%M} UTC"
                   + (f" (and {len(t['published']) - 1} earlier run(s))" if len(t["published"]) > 1 else ""))
    else:
        out.append("  published   not published (not the latest period when a run published, or blocked)")
    if t["decision"] is not None:
        d = t["decision"]
        out.append(f"  latest decision for {k['department_id']}: {'published' if d['published'] else 'BLOCKED'} in run "
                   f"{d['run_id']} — {d['reason']}")
    out.append("")
    out.append(f"Source rows behind the figure (latest revision of each organisation), {len(t['rows'])}:")
    out.append(f"  {'org':<8} {'value':>12} {'numerator':>12} {'denominator':>12}  {'row':>5}  batch / file")
    for r in t["rows"][:SHOWN_ROWS]:
        out.append(f"  {r['org_id']:<8} {_fmt(r['value']):>12} {_fmt(r['numerator']):>12} {_fmt(r['denominator']):>12}  "
                   f"{r.get('cell') or r['row_number']:>5}  {r['batch_id']} / {r['source_file'] or r['source_query']}")
    if len(t["rows"]) > SHOWN_ROWS:  # an official return has thousands: summarised, all in --format json
        out.append(f"  … and {len(t['rows']) - SHOWN_ROWS} more row(s) (all of them: --format json)")
    out.append("")
    out.append("Batches:")
    for b in t["batches"]:
        rows = sorted(r["row_number"] for r in t["rows"] if r["batch_id"] == b["batch_id"])
        out.append(f"  {b['batch_id']}: {b['source_file'] or 'query: ' + str(b['source_query'])}")
        out.append(f"    sha256 {b['source_sha256']}")
        if b.get("period_origin"):
            out.append(f"    period from {b['period_origin']}")
        used = ", ".join(map(str, rows[:SHOWN_ROWS])) + (f", … ({len(rows)} rows)" if len(rows) > SHOWN_ROWS else "")
        out.append(f"    landed {b['loaded_at']:%Y-%m-%d %H:%M:%S} UTC in run {b['run_id']}; {b['rows_in']} rows in, "
                   f"{b['rows_accepted']} landed, {b['rows_quarantined']} quarantined; rows used here: {used}")
        for x in (x for x in t.get("excluded", []) if x["batch_id"] == b["batch_id"]):
            records = (x["row_numbers"] or "").split(", ")
            shown = ", ".join(records[:10]) + (", …" if len(records) > 10 else "")
            out.append(f"    excluded by rule {x['rule']}: {x['rows']} row(s) (records {shown})")
        cs = t["checks"].get(b["batch_id"], [])
        failed = [c for c in cs if not c["success"]]
        out.append(f"    checks: {len(cs) - len(failed)} passed, {len(failed)} failed")
        for c in cs:
            mark = "✓" if c["success"] else "✗"
            out.append(f"      {mark} {c['suite']}.{c['check_name']} [{c['severity']}] observed: {str(c['observed'])[:100]}")
    if t["superseded"]:
        out.append("")
        out.append(f"Superseded revisions (an earlier batch's row for the same organisation), {len(t['superseded'])}:")
        for r in t["superseded"]:
            out.append(f"  {r['org_id']:<8} value {_fmt(r['value'])} num {_fmt(r['numerator'])} den {_fmt(r['denominator'])} "
                       f"row {r['row_number']} of {r['batch_id']} ({r['source_file']})")
    out.append("")
    out.append(f"Quarantined rows of these batches for {k['kpi_id']} {t['period_label']}: {len(t['quarantined']) or 'none'}")
    for q in t["quarantined"][:SHOWN_ROWS]:
        at = f" ({q['cell']})" if q.get("cell") else ""
        out.append(f"  row {q['row_number']}{at} of {q['batch_id']}: {q['reason']} — {q['detail']}; record {q['record']}")
    if len(t["quarantined"]) > SHOWN_ROWS:
        counts: dict[str, int] = {}
        for q in t["quarantined"]:
            counts[q["reason"]] = counts.get(q["reason"], 0) + 1
        out.append(f"  … and {len(t['quarantined']) - SHOWN_ROWS} more; by reason: "
                   + ", ".join(f"{r} × {n}" for r, n in sorted(counts.items())))
    out.append(f"Drift findings for this figure (latest drift run): {len(t['drift']) or 'none'}")
    for d in t["drift"]:
        out.append(f"  {d['severity']} {d['kind']}: {d['detail']}")
    return "\n".join(out)


def to_json(t: dict) -> str:
    return json.dumps(t, default=str, indent=2)
