"""Read-only views of the warehouse for the command line: the run summary and the status table."""
from __future__ import annotations

from pipelines.warehouse import rows as _rows
from pipelines.warehouse import table_exists as _exists


STATUS_COLUMNS = """
    department_id, kpi_id, kpi_name, unit, direction, period, actual, expected_value, target_value,
    target_date, status, previous_status, forecast_value, forecast_status, data_trust,
    data_trust_reason, owner_name, published, publication_run_id, published_at"""


STANDARD_COLUMNS = ("judged_by", "standard_value", "band_lower", "band_upper", "standard_met", "periods_met_last_12",
                    "periods_judged_last_12", "consecutive_misses")


EXTRA_COLUMNS = ("tolerance_amount", "target_withdrawn", "forecast_reason", "trend_periods", "trend_periods_needed")
KPI_DETAILS = ("frequency", "fiscal_start_month", "code", "decimals", "tolerance", "tolerance_kind", "source_id")


def _with_standards(con, rows: list[dict], current: bool = True) -> list[dict]:
    """Each figure with its standard (met / not met, record over the last 12 periods), what
    judged its status, its tolerance in the KPI's unit and why there is no forecast, from
    marts.fct_kpi_progress for the same KPI and period; the KPI's frequency and year start (for
    its period label), display code, decimals and tolerance as written; and, for a KPI with no
    figure for its due period, `no_figure` (pipelines/reporting/gaps.py): the row then shows the
    due period without a figure, the latest figure kept apart as `previous_figure`."""
    from pipelines.reporting.gaps import missing_figures

    marts = {}
    if _exists(con, "marts", "fct_kpi_progress"):
        have = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                          "where table_schema = 'marts' and table_name = 'fct_kpi_progress'").fetchall()}
        wanted = [*STANDARD_COLUMNS, *(c for c in EXTRA_COLUMNS if c in have)]
        marts = {(r["kpi_id"], r["period"]): r for r in _rows(
            con, f"select kpi_id, period, {', '.join(wanted)} from marts.fct_kpi_progress")}
    details = {r["kpi_id"]: r for r in _rows(con, f"select kpi_id, {', '.join(KPI_DETAILS)} from catalog.kpis")}
    missing = missing_figures(con) if current else {}
    for row in rows:
        found = marts.get((row["kpi_id"], row["period"]), {})
        for col in (*STANDARD_COLUMNS, *EXTRA_COLUMNS):
            row[col] = found.get(col)
        for col in KPI_DETAILS:
            row[col] = (details.get(row["kpi_id"]) or {}).get(col)
        gap = missing.get(row["kpi_id"])
        row["no_figure"] = gap
        if gap is not None:
            row["previous_figure"] = {"period": row["period"], "actual": row["actual"], "status": row["status"]}
            row.update(period=gap["due_period"], actual=None, expected_value=None, status="grey",
                       previous_status=None, forecast_value=None, forecast_status="unknown",
                       forecast_reason=None, **{c: None for c in STANDARD_COLUMNS})
            reason = gap["text"] + (f"; the latest figure is for {gap['latest_label']}" if gap.get("latest_label") else "")
            if row.get("data_trust") in (None, "trusted", "stale"):
                row["data_trust"], row["data_trust_reason"] = "stale", reason
            else:  # failed checks (or anomalous) stay, with their own reason beside the gap
                row["data_trust_reason"] = f"{reason}; {row.get('data_trust_reason') or ''}".rstrip("; ")
    return rows


def kpi_status(con) -> list[dict]:
    """Every KPI's figure as published (publish.kpi_status: status and data trust with its
    reason); before the first publication, the latest period of marts.fct_kpi_progress."""
    if _exists(con, "publish", "kpi_status"):
        return _with_standards(con, _rows(
            con, f"select {STATUS_COLUMNS} from publish.kpi_status order by department_id, kpi_id"))
    return _with_standards(con, _rows(con, """
        select k.department_id, k.kpi_id, k.name as kpi_name, k.unit, k.direction,
               p.period, p.actual, p.expected_value, p.target_value, p.target_date,
               coalesce(p.status, 'grey') as status, p.previous_status,
               p.forecast_value, coalesce(p.forecast_status, 'unknown') as forecast_status,
               coalesce(p.data_trust, 'stale') as data_trust,
               coalesce(p.data_trust_reason, 'no data landed for this KPI') as data_trust_reason,
               k.owner_name, null as published, null as publication_run_id, null as published_at
        from catalog.kpis k
        left join marts.fct_kpi_progress p on p.kpi_id = k.kpi_id and p.is_latest
        order by k.department_id, k.kpi_id
    """))


def kpi_status_at(con, text: str) -> list[dict]:
    """Every KPI's figure for one period given as text in any form of the period model
    (`2014/15 Q2`, `2014-Q3`, `2014-07`, ...), read with each KPI's own frequency and year start;
    KPIs of whose frequency the text is no period are left out. A KPI without a figure for it
    says so, with its quarantined rows ("no figure for 2014/15 Q2 (1 row quarantined: ...)").
    Raises ValueError when the text is a period of no KPI."""
    from kpimodel import periods as period_model
    from pipelines.reporting.gaps import no_figure_text, quarantined_for

    kpis = _rows(con, """select kpi_id, name as kpi_name, department_id, unit, direction, owner_name, source_id,
                                frequency, fiscal_start_month, code from catalog.kpis order by department_id, kpi_id""")
    wanted, problems = {}, set()
    for k in kpis:
        try:
            wanted[k["kpi_id"]] = period_model.parse(text, k["frequency"], k["fiscal_start_month"] or 1)
        except period_model.PeriodError as exc:
            problems.add(f"{exc.detail} ({k['frequency']}: {period_model.forms(k['frequency'])})")
    if not wanted:
        raise ValueError(f"{text.strip()[:40]!r} is a period of no KPI: " + "; ".join(sorted(problems)))
    found = {(r["kpi_id"], r["period"]): r for r in _rows(con, """
        select kpi_id, period, actual, expected_value, target_value, target_date, status, previous_status,
               forecast_value, forecast_status, data_trust, data_trust_reason
        from marts.fct_kpi_progress where period = any(?)""", [sorted(set(wanted.values()))])}
    out, cache = [], {}
    for k in kpis:
        if k["kpi_id"] not in wanted:
            continue
        period = wanted[k["kpi_id"]]
        row = {"department_id": k["department_id"], "kpi_id": k["kpi_id"], "kpi_name": k["kpi_name"],
               "unit": k["unit"], "direction": k["direction"], "owner_name": k["owner_name"], "period": period,
               "published": None, "publication_run_id": None, "published_at": None}
        figure = found.get((k["kpi_id"], period))
        if figure is None:
            label = period_model.label(period, k["frequency"], k["fiscal_start_month"])
            text_ = no_figure_text(label, quarantined_for(con, k, period, cache))
            row.update(actual=None, expected_value=None, target_value=None, target_date=None, status="grey",
                       previous_status=None, forecast_value=None, forecast_status="unknown", data_trust="stale",
                       data_trust_reason=text_)
        else:
            row.update({c: v for c, v in figure.items() if c not in ("kpi_id", "period")})
        out.append(row)
    rows = _with_standards(con, out, current=False)
    for row in rows:
        if row["actual"] is None and row["data_trust_reason"].startswith("no figure"):
            row["no_figure"] = {"due_period": row["period"], "text": row["data_trust_reason"]}
    return rows


def kpi_history(con, periods: int) -> dict[str, list[dict]]:
    """The last `periods` periods of every KPI (marts.fct_kpi_progress), oldest first."""
    out: dict[str, list[dict]] = {}
    for r in _rows(con, """
            select * from (
                select kpi_id, period, period_end, actual, expected_value, target_value, target_date,
                       status, judged_by, standard_value, band_lower, band_upper, standard_met, periods_met_last_12,
                       periods_judged_last_12, consecutive_misses, forecast_value, forecast_status,
                       data_trust, data_trust_reason,
                       row_number() over (partition by kpi_id order by period desc) as recency
                from marts.fct_kpi_progress) ranked
            where recency <= ?
            order by kpi_id, period""", [periods]):
        r.pop("recency")
        out.setdefault(r["kpi_id"], []).append(r)
    return out


def organisations_against_standard(con, periods: int = 1) -> list[dict]:
    """Per KPI with a standard, for its last `periods` periods: how many organisations met the
    standard, of how many with a value, and the organisations that did not, worst first."""
    if not _exists(con, "marts", "fct_kpi_standard_orgs"):
        return []
    counts = _rows(con, """
        select * from (
            select s.kpi_id, k.name as kpi_name, k.unit, k.direction, k.frequency, k.department_id, s.period,
                   s.standard_value, s.band_lower, s.band_upper, s.orgs_judged, s.orgs_met, s.orgs_not_met,
                   row_number() over (partition by s.kpi_id order by s.period desc) as recency
            from marts.fct_kpi_standard_orgs s join catalog.kpis k using (kpi_id)) ranked
        where recency <= ?
        order by department_id, kpi_id, period desc""", [periods])
    misses: dict[tuple, list[dict]] = {}
    for r in _rows(con, """
            select o.kpi_id, o.period, o.org_id, o.actual, k.direction
            from marts.fct_kpi_org_values o join catalog.kpis k using (kpi_id)
            where o.standard_met = false"""):
        misses.setdefault((r["kpi_id"], r["period"]), []).append(r)
    for c in counts:
        c.pop("recency")
        worst = misses.get((c["kpi_id"], c["period"]), [])
        # worst first: furthest from the standard in the KPI's good direction; ties by id
        worst.sort(key=lambda r: (r["actual"] if c["direction"] != "lower_is_better" else -r["actual"], r["org_id"]))
        c["not_met"] = [{"org_id": r["org_id"], "actual": r["actual"]} for r in worst]
    return counts


def run_summary(con, run_id: str) -> dict:
    out: dict = {"run_id": run_id}
    out["as_of"] = con.execute("select as_of from catalog.settings").fetchone()[0]
    out["departments"] = _rows(con, "select * from marts.fct_department_scorecard order by department_id")
    out["kpis"] = kpi_status(con)
    # Untrusted as published (includes `anomalous` and blocked publications).
    for d in out["departments"]:
        d["untrusted"] = sum(1 for k in out["kpis"] if k["department_id"] == d["department_id"]
                             and k["data_trust"] != "trusted")
    out["publication"] = _rows(con, """
        select department_id, published, reason from publish.decisions where run_id = ?
        order by department_id""", [run_id]) if _exists(con, "publish", "decisions") else []
    out["drift"] = _rows(con, """
        select kind, severity, department_id, source_id, kpi_id, period, observed, expected, detail
        from quality.drift_findings where run_id = ?
        order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, kind, kpi_id, source_id""",
        [run_id]) if _exists(con, "quality", "drift_findings") else []
    out["milestones"] = _rows(con, """
        select m.milestone_id, m.title, m.department_id, m.kpi_id, m.test, m.due_date, m.state, m.met_how,
               m.completed_on, m.completed_by, m.latest_actual, m.judged_period, m.judged_actual,
               m.forecast_value, m.threshold, k.unit
        from marts.fct_milestones m left join catalog.kpis k on k.kpi_id = m.kpi_id
        order by m.due_date, m.milestone_id""")
    out["sources"] = _rows(con, "select * from marts.fct_source_freshness order by source_id")
    out["batches"] = _rows(con, """
        select source_id, source_file, rows_in, rows_accepted, rows_quarantined
        from raw.batches where run_id = ? order by source_id, source_file""", [run_id])
    out["excluded"] = _rows(con, """
        select x.source_id, x.rule, sum(x.rows) as rows, count(distinct x.batch_id) as batches
        from raw.excluded_rows x join raw.batches b using (batch_id)
        where b.run_id = ? group by x.source_id, x.rule order by 1, 2""", [run_id]) \
        if _exists(con, "raw", "excluded_rows") else []
    out["quarantine"] = _rows(con, """
        select q.source_id, coalesce(b.source_file, 'query') as source_file, q.reason, count(*) as rows,
               min(q.detail) filter (where q.row_number is null) as problem
        from raw.quarantine q join raw.batches b using (batch_id)
        where b.run_id = ? group by q.source_id, coalesce(b.source_file, 'query'), q.reason
        order by 1, 2, 3""", [run_id])
    # Checks on this run's new batches (kpiwatch's own and the sources' GX suites); the mart
    # contract and dbt tests are counted apart (they run on every run, batches or not).
    out["checks"] = _rows(con, """
        select check_name, severity, success, count(*) as batches
        from quality.check_results
        where run_id = ? and suite <> 'dbt' and not starts_with(suite, 'mart_')
        group by check_name, severity, success order by success, check_name, severity""", [run_id])
    out["other_checks"] = _rows(con, """
        select case when suite = 'dbt' then 'dbt tests' else 'mart contract' end as kind,
               count(distinct check_name) filter (where success) as passed,
               count(distinct check_name) filter (where not success) as failed,
               string_agg(distinct check_name, ', ' order by check_name) filter (where not success) as failed_names
        from quality.check_results
        where run_id = ? and (suite = 'dbt' or starts_with(suite, 'mart_'))
        group by case when suite = 'dbt' then 'dbt tests' else 'mart contract' end order by 1""", [run_id])
    out["anomalies"] = _rows(con, """
        select a.kpi_id, a.department_id, a.period, a.actual, a.change, a.robust_z
        from marts.fct_kpi_anomalies a where a.is_latest and a.is_anomaly order by a.kpi_id""")
    out["alerts"] = _rows(con, """
        select l.fingerprint, l.rule, l.event, l.channel, l.outcome, s.severity, s.summary,
               case s.severity when 'critical' then 0 when 'warning' then 1 else 2 end as severity_rank,
               string_agg(distinct l.sink, ', ' order by l.sink) as sinks,
               max(l.detail) filter (where l.outcome <> 'sent') as detail
        from alerting.alert_log l left join alerting.alert_state s using (fingerprint)
        where l.run_id = ? group by l.fingerprint, l.rule, l.event, l.channel, l.outcome, s.severity, s.summary
        order by severity_rank, rule, summary, fingerprint, channel, event, outcome""",
        [run_id]) if _exists(con, "alerting", "alert_log") else []
    out["firing"] = _rows(con, """
        select rule, subject, severity, summary from alerting.alert_state
        where state = 'firing' order by severity, rule, subject, fingerprint""") \
        if _exists(con, "alerting", "alert_state") else []
    return out
