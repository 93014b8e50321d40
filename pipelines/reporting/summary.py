"""Read-only views of the warehouse for the command line: the run summary and the status table."""
from __future__ import annotations

import duckdb


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _exists(con, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()[0])


def kpi_status(con) -> list[dict]:
    """The latest period of every KPI with its status and data trust (KPIs with no data: grey)."""
    return _rows(con, """
        select k.department_id, k.kpi_id, k.name as kpi_name, k.unit, k.direction,
               p.period, p.actual, p.expected_value, p.target_value, p.target_date,
               coalesce(p.status, 'grey') as status, p.previous_status,
               p.forecast_value, coalesce(p.forecast_status, 'unknown') as forecast_status,
               coalesce(p.data_trust, 'stale') as data_trust,
               coalesce(p.data_trust_reason, 'no data landed for this KPI') as data_trust_reason,
               k.owner_name
        from catalog.kpis k
        left join marts.fct_kpi_progress p on p.kpi_id = k.kpi_id and p.is_latest
        order by k.department_id, k.kpi_id
    """)


def run_summary(con, run_id: str) -> dict:
    out: dict = {"run_id": run_id}
    out["as_of"] = con.execute("select as_of from catalog.settings").fetchone()[0]
    out["departments"] = _rows(con, "select * from marts.fct_department_scorecard order by department_id")
    out["kpis"] = kpi_status(con)
    out["milestones"] = _rows(con, """
        select milestone_id, title, department_id, kpi_id, due_date, state, latest_actual,
               forecast_value, threshold
        from marts.fct_milestones order by due_date, milestone_id""")
    out["sources"] = _rows(con, "select * from marts.fct_source_freshness order by source_id")
    out["batches"] = _rows(con, """
        select source_id, source_file, rows_in, rows_accepted, rows_quarantined
        from raw.batches where run_id = ? order by source_id, source_file""", [run_id])
    out["quarantine"] = _rows(con, """
        select q.source_id, q.reason, count(*) as rows
        from raw.quarantine q join raw.batches b using (batch_id)
        where b.run_id = ? group by all order by 1, 2""", [run_id])
    out["checks"] = _rows(con, """
        select check_name, severity, success, count(*) as batches
        from quality.check_results where run_id = ? group by all order by success, check_name""", [run_id])
    out["anomalies"] = _rows(con, """
        select a.kpi_id, a.department_id, a.period, a.actual, a.change, a.robust_z
        from marts.fct_kpi_anomalies a where a.is_latest and a.is_anomaly order by a.kpi_id""")
    out["alerts"] = _rows(con, """
        select l.fingerprint, l.rule, l.event, l.channel, l.outcome, s.severity, s.summary,
               case s.severity when 'critical' then 0 when 'warning' then 1 else 2 end as severity_rank,
               string_agg(distinct l.sink, ', ' order by l.sink) as sinks,
               max(l.detail) filter (where l.outcome <> 'sent') as detail
        from alerting.alert_log l left join alerting.alert_state s using (fingerprint)
        where l.run_id = ? group by all
        order by severity_rank, rule, summary""",
        [run_id]) if _exists(con, "alerting", "alert_log") else []
    out["firing"] = _rows(con, """
        select rule, subject, severity, summary from alerting.alert_state
        where state = 'firing' order by severity, rule, subject""") \
        if _exists(con, "alerting", "alert_state") else []
    return out
