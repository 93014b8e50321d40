"""Publication: which KPI figures a run publishes, per department, and how far to trust them.

After dbt and the drift step, for every department:
- blocking checks = failed `critical` checks on the latest batch of each of its sources (source
  contract, schema, GX suite, rejection rate; a shared source's failure blocks every department
  it feeds, its rejection rate is judged per department on that department's KPIs' rows) plus failed `critical` expectations of the
  published mart's contract (expectations/suites/mart_fct_kpi_progress.json) on its rows;
- none: the department's current figures (latest period of each KPI in marts.fct_kpi_progress)
  are published: appended to publish.kpi_figures with this run's id and their evidence;
- some: nothing is published for it; its previously published figures stay in
  publish.kpi_status, marked `stale`, with the blocking checks as the reason (a KPI never
  published before shows no figure and `failed_checks`).
Warnings never block. Every decision is kept in publish.decisions.

Data trust of a published figure (beside its status, never inside it), first match wins, the
other conditions are added to the reason:
  failed_checks  a batch behind the value failed a critical check (dbt: int_kpi_data_trust)
  stale          the source is overdue (dbt), or publication is blocked (previous figure shown)
  anomalous      a drift finding (warning or critical) on the figure's KPI and period: an outlier,
                 a level shift, or unusual volume of its KPI or source
  trusted        otherwise
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd

from pipelines.quality.evidence import figure_evidence
from pipelines.quality.store import KPI_STATUS_COLUMNS, ensure_publish, exists
from pipelines.warehouse import dialect, pg_sqlalchemy_url
from pipelines.warehouse import rows as _rows

MART = "fct_kpi_progress"
MART_SUITE = "mart_fct_kpi_progress"
MART_SOURCE_ID = f"marts.{MART}"
TRUST_ORDER = ("failed_checks", "stale", "anomalous", "trusted")
# Findings that make a figure anomalous (missing submissions are what `stale` says already).
ANOMALY_KINDS = ("kpi_outlier", "level_shift", "volume")

FIGURE_COLUMNS = [
    "department_id", "kpi_id", "kpi_name", "unit", "direction", "owner_name", "period", "actual",
    "numerator", "denominator", "expected_value", "target_value", "target_date", "status",
    "previous_status", "forecast_value", "forecast_status", "data_trust", "data_trust_reason",
    "latest_batch_id", "evidence_json",
]


def final_trust(dbt_trust: str | None, dbt_reason: str | None, findings: list[dict]) -> tuple[str, str]:
    """Combine dbt's data trust (trusted / stale / failed_checks) with drift findings."""
    flags: list[tuple[str, str]] = []
    if dbt_trust in ("failed_checks", "stale"):
        flags.append((dbt_trust, dbt_reason or dbt_trust))
    for f in findings:
        flags.append(("anomalous", f"{f['kind'].replace('_', ' ')} ({f['severity']}): {f['detail']}"))
    if not flags:
        return "trusted", dbt_reason or "all critical checks passed, source up to date, no drift found"
    flags.sort(key=lambda fl: TRUST_ORDER.index(fl[0]))
    primary = flags[0][0]
    reasons = [r for _, r in flags]
    return primary, reasons[0] + ("; also " + "; ".join(reasons[1:]) if len(reasons) > 1 else "")


def anomaly_index(findings: list[dict]) -> dict[tuple[str, dt.date], list[dict]]:
    """(kpi_id, period) -> findings that make that figure anomalous. A source-level volume
    finding applies to every KPI of the source for that period (expanded by the caller)."""
    out: dict = {}
    for f in findings:
        if f["kind"] in ANOMALY_KINDS and f["severity"] in ("warning", "critical"):
            out.setdefault((f.get("kpi_id"), f["source_id"], f["period"]), []).append(f)
    return out


def findings_for(index: dict, kpi_id: str, source_id: str, period) -> list[dict]:
    hits = list(index.get((kpi_id, source_id, period), []))
    hits += index.get((None, source_id, period), [])
    # A level shift is dated by its first shifted period; it stays news while it is the latest.
    for (k, s, p), fs in index.items():
        if k == kpi_id and p != period:
            hits += [f for f in fs if f["kind"] == "level_shift" and f.get("is_latest")]
    return hits


# ---- mart contract -----------------------------------------------------------------------------
@dataclass
class MartCheck:
    check_name: str
    expectation_type: str
    column: str | None
    severity: str
    observed: str
    expected: str
    failed_departments: dict[str, int] = field(default_factory=dict)  # department -> failing rows
    table_level_failure: bool = False


# The batch the mart contract checks: the latest row of each catalog KPI that has one.
MART_QUERY = """
    select p.kpi_id, k.department_id, p.period, p.actual, p.status, p.data_trust, p.forecast_status, k.unit,
           k.min_value, k.max_value
    from catalog.kpis k
    join marts.fct_kpi_progress p on p.kpi_id = k.kpi_id and p.is_latest
    where p.period is not null"""


def validate_mart(latest: pd.DataFrame, as_of: dt.date, gx_results: list | None = None,
                  sql_url: str | None = None) -> list[MartCheck]:
    """Run the mart's GX suite on the latest figures; attribute failing rows to departments.
    With `sql_url` (the Postgres warehouse) GX validates MART_QUERY in the database through
    SQLAlchemy; otherwise the frame `latest` with its pandas engine."""
    from pipelines.quality.gx_validation import validate_frame, validate_sql

    frame = latest[["kpi_id", "department_id", "period", "actual", "status", "data_trust",
                    "forecast_status", "unit", "min_value", "max_value"]].reset_index(drop=True)
    for col in ("actual", "min_value", "max_value"):
        frame[col] = frame[col].astype("float64")
    if sql_url:
        outcomes, keys = validate_sql(sql_url, MART_QUERY, {"as_of": as_of}, MART_SUITE, "kpi_id", gx_results)
        dept_of = dict(zip(frame["kpi_id"], frame["department_id"]))
        failing = lambda o: [dept_of.get(keys[i]) for i in o.unexpected_rows]  # noqa: E731
    else:
        frame["period"] = pd.to_datetime(frame["period"])
        outcomes = validate_frame(frame, {"as_of": pd.Timestamp(as_of)}, MART_SUITE, gx_results)
        failing = lambda o: [frame.loc[int(i), "department_id"] for i in o.unexpected_rows]  # noqa: E731
    checks = []
    for o in outcomes:
        c = MartCheck(o.check_name, o.expectation_type, o.column, o.severity, o.observed, o.expected)
        if not o.success:
            depts = [d for d in failing(o) if d is not None]
            for dept in depts:
                c.failed_departments[dept] = c.failed_departments.get(dept, 0) + 1
            if not depts:
                c.table_level_failure = True
        checks.append(c)
    return checks


# ---- the publication step ------------------------------------------------------------------------
@dataclass
class Decision:
    department_id: str
    published: bool
    reason: str
    blocking: list[dict]
    kpis: int


@dataclass
class PublishReport:
    decisions: list[Decision]
    mart_checks: list[MartCheck]
    figures: int


def latest_figures(con) -> list[dict]:
    """Every catalog KPI with the latest row of marts.fct_kpi_progress (none: period is null)."""
    return _rows(con, """
        select k.department_id, k.kpi_id, k.name as kpi_name, k.unit, k.direction, k.owner_name,
               k.source_id, k.min_value, k.max_value, p.period, p.actual, p.numerator, p.denominator, p.expected_value,
               p.target_value, p.target_date, p.status, p.previous_status, p.forecast_value,
               p.forecast_status, p.data_trust, p.data_trust_reason, p.latest_batch_id
        from catalog.kpis k
        left join marts.fct_kpi_progress p on p.kpi_id = k.kpi_id and p.is_latest
        order by k.department_id, k.kpi_id""")


# The departments each source feeds: its own, or for a shared source (no department) those of
# its KPIs.
FED_DEPARTMENTS = """
    fed as (
        select source_id, department_id, false as shared from catalog.sources where department_id is not null
        union
        select k.source_id, k.department_id, true as shared
        from catalog.kpis k join catalog.sources s on s.source_id = k.source_id
        where s.department_id is null
    )"""


def blocking_source_checks(con, run_id: str | None = None) -> dict[str, list[dict]]:
    """department -> failed critical checks on the latest batch of each of its sources, and
    (with `run_id`) its sources that could not be read at all in that run. A shared source's
    failed check blocks every department it feeds, except a check judged for one department
    (its rejection rate on that department's KPIs' rows), which blocks that department only."""
    rows = _rows(con, f"""
        with latest_batch as (
            select source_id, batch_id, source_file, loaded_at, run_id from (
                select *, row_number() over (partition by source_id order by loaded_at desc, batch_id desc) as rn
                from raw.batches) ranked
            where rn = 1
        ),
        results as (
            select * from (
                select *, row_number() over (
                    partition by batch_id, suite, check_name, coalesce(column_name, ''), coalesce(department_id, '')
                    order by checked_at desc) as rn
                from quality.check_results) ranked
            where rn = 1
        ),{FED_DEPARTMENTS}
        select fed.department_id, r.source_id, r.batch_id, b.source_file, b.run_id as landed_run_id,
               r.suite, r.check_name, r.observed
        from results r
        join latest_batch b on b.batch_id = r.batch_id
        join fed on fed.source_id = r.source_id
        where r.severity = 'critical' and not r.success
          and (not fed.shared or r.department_id is null or r.department_id = fed.department_id)
        order by fed.department_id, r.source_id, r.check_name""")
    if run_id is not None:
        rows += _rows(con, f"""
            with{FED_DEPARTMENTS}
            select fed.department_id, r.source_id, null as batch_id, null as source_file, r.run_id as landed_run_id,
                   r.suite, r.check_name, r.observed
            from quality.check_results r
            join fed on fed.source_id = r.source_id
            where r.run_id = ? and r.check_name = 'source_readable' and not r.success
            order by fed.department_id, r.source_id""", [run_id])
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["department_id"], []).append(r)
    return out


def _describe_block(blocking: list[dict]) -> str:
    parts = []
    for b in blocking:
        if b.get("batch_id") is None:  # the source could not be read: there is no batch
            parts.append(f"source {b['source_id']} could not be read: {str(b.get('observed') or '')[:160]}")
            continue
        where = f"batch {b['batch_id']}" + (f" ({b['source_file']})" if b.get("source_file") else "")
        parts.append(f"{b['check_name']} failed on {where}: {str(b.get('observed') or '')[:160]}")
    return "critical check(s) failed — " + "; ".join(parts)


def publish(con, run_id: str, as_of: dt.date, now: dt.datetime, findings: list[dict],
            extra_checks: list[dict] | None = None) -> PublishReport:
    """Decide per department, write publish.decisions / kpi_figures / kpi_status, and store the
    mart contract results (and `extra_checks`, e.g. the run's dbt tests) in quality.check_results."""
    ensure_publish(con)
    figures = latest_figures(con)
    has_figure = [r for r in figures if r["period"] is not None]
    gx_results: list = []
    sql_url = pg_sqlalchemy_url() if dialect(con) == "postgres" else None
    mart_checks = validate_mart(pd.DataFrame(has_figure), as_of, gx_results, sql_url) if has_figure else []
    departments = [r[0] for r in con.execute("select department_id from catalog.departments order by 1").fetchall()]
    source_blocks = blocking_source_checks(con, run_id)
    mart_batch = f"{MART_SOURCE_ID}@{run_id}"

    decisions: list[Decision] = []
    for dept in departments:
        blocking = list(source_blocks.get(dept, []))
        for c in mart_checks:
            if c.severity == "critical" and (dept in c.failed_departments or c.table_level_failure):
                blocking.append({"source_id": MART_SOURCE_ID, "batch_id": mart_batch, "source_file": None,
                                 "check_name": c.check_name, "suite": MART_SUITE,
                                 "observed": f"{c.failed_departments.get(dept, 0)} of the department's figures: {c.observed}"})
        n = sum(1 for r in figures if r["department_id"] == dept)
        if blocking:
            decisions.append(Decision(dept, False, _describe_block(blocking), blocking, n))
        else:
            decisions.append(Decision(dept, True, "no critical check failed on the department's latest batches "
                                                  "or its published figures", [], n))

    index = anomaly_index(findings)
    pairs = [(r["kpi_id"], r["period"]) for r in has_figure]
    evidence = figure_evidence(con, pairs)
    published_depts = {d.department_id for d in decisions if d.published}
    new_rows = []
    for r in figures:
        if r["department_id"] not in published_depts:
            continue
        if r["period"] is None:
            trust, reason = "stale", "no data landed for this KPI"
            r.update(status="grey", forecast_status="unknown", period=None)
        else:
            hits = findings_for(index, r["kpi_id"], r["source_id"], r["period"])
            trust, reason = final_trust(r["data_trust"], r["data_trust_reason"], hits)
        r["data_trust"], r["data_trust_reason"] = trust, reason
        ev = evidence.get((r["kpi_id"], r["period"])) if r["period"] is not None else None
        r["evidence_json"] = json.dumps(ev, default=str) if ev else None
        new_rows.append(r)

    con.execute("begin")
    try:
        con.executemany(
            "insert into publish.decisions values (?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, now, as_of, d.department_id, d.published, d.reason,
              json.dumps(d.blocking, default=str) if d.blocking else None, d.kpis] for d in decisions])
        if new_rows:
            # Column names are this module's constants, values bound parameters.
            con.executemany(
                f"insert into publish.kpi_figures (run_id, published_at, {', '.join(FIGURE_COLUMNS)}) "
                f"values ({', '.join(['?'] * (len(FIGURE_COLUMNS) + 2))})",
                [[run_id, now, *[r.get(c) for c in FIGURE_COLUMNS]] for r in new_rows])
        _store_checks(con, run_id, now, mart_batch, mart_checks, departments, gx_results, extra_checks or [])
        _rebuild_status(con, run_id, {d.department_id: d for d in decisions})
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return PublishReport(decisions, mart_checks, len(new_rows))


def _store_checks(con, run_id, now, mart_batch, mart_checks, departments, gx_results, extra_checks):
    rows = []
    for c in mart_checks:
        for dept in departments:
            failed = c.failed_departments.get(dept, 0)
            success = not failed and not c.table_level_failure
            rows.append([run_id, mart_batch, MART_SOURCE_ID, dept, MART_SUITE, c.check_name, c.expectation_type,
                         c.column, c.severity, success, c.observed if not success else "passed on the department's figures",
                         c.expected, failed, now])
    for e in extra_checks:
        rows.append([run_id, e["batch_id"], e["source_id"], e.get("department_id") or "all", e["suite"],
                     e["check_name"], e.get("expectation_type"), e.get("column_name"), e["severity"], e["success"],
                     e.get("observed"), e.get("expected"), e.get("unexpected_count") or 0, now])
    if rows:
        con.executemany("insert into quality.check_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    for doc in gx_results:
        con.execute(
            "insert into quality.gx_validation_results values (?, ?, ?, ?, ?, ?, ?)",
            [run_id, mart_batch, MART_SOURCE_ID, MART_SUITE, bool(doc.get("success")), json.dumps(doc, default=str), now])


def _rebuild_status(con, run_id: str, decisions: dict[str, Decision]) -> None:
    """publish.kpi_status: every catalog KPI with its figure as currently published."""
    con.execute("drop table if exists publish.kpi_status")
    con.execute(f"create table publish.kpi_status ({KPI_STATUS_COLUMNS})")
    kpis = _rows(con, """select kpi_id, name as kpi_name, department_id, unit, direction, owner_name
                         from catalog.kpis order by department_id, kpi_id""")
    current = {r["kpi_id"]: r for r in _rows(con, """
        select * from (
            select f.*, row_number() over (partition by f.kpi_id order by f.published_at desc, f.run_id desc) as rn
            from publish.kpi_figures f
            join catalog.kpis k using (kpi_id)) ranked
        where rn = 1""")}
    cols = [c.strip().split()[0] for c in KPI_STATUS_COLUMNS.split(",")]
    out = []
    for k in kpis:
        d = decisions.get(k["department_id"])
        fig = current.get(k["kpi_id"])
        published_now = bool(d and d.published and fig and fig["run_id"] == run_id)
        if fig is None:
            row = {**k, "status": "grey", "forecast_status": "unknown", "data_trust": "failed_checks",
                   "data_trust_reason": f"not published: {d.reason if d else 'no publication decision'}; "
                                        "no figure was published before"}
        else:
            row = {c: fig.get(c) for c in cols if c in fig}
            row.update(publication_run_id=fig["run_id"], published_at=fig["published_at"])
            if not published_now and d is not None and not d.published:
                row["data_trust"] = "stale"
                row["data_trust_reason"] = (f"publication blocked in this run: {d.reason}; showing the figure "
                                            f"published in run {fig['run_id']} at {fig['published_at']:%Y-%m-%d %H:%M} UTC")
        row.update(published=published_now, decision_run_id=run_id)
        out.append([row.get(c) for c in cols])
    con.executemany(f"insert into publish.kpi_status values ({', '.join(['?'] * len(cols))})", out)


def read_status(con) -> list[dict] | None:
    """publish.kpi_status as rows, or None before the first publication."""
    if not exists(con, "publish", "kpi_status"):
        return None
    return _rows(con, "select * from publish.kpi_status order by department_id, kpi_id")
