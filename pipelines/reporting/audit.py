"""The auditor's data-quality report: one self-contained HTML file (inline CSS, no scripts, no
network resources; every value taken from data is HTML-escaped) for one run:

1. run summary;              5. drift findings;
2. publication decisions;    6. alerts sent and suppressed (with why);
3. every check that ran;     7. evidence: each published figure traced to source file, sha256,
4. quarantined rows;            batch, row numbers, checks and run;
                             8. a link to the GX Data Docs built beside the report.
Reads the warehouse only (read-only connection); tables of other stages are read defensively.
"""
from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

from pipelines.quality.store import columns, exists
from pipelines.warehouse import rows as _rows

SAMPLES_PER_REASON = 5


class AuditError(RuntimeError):
    pass


def latest_run(con) -> str | None:
    for table, ts in (("publish.decisions", "decided_at"), ("quality.check_results", "checked_at")):
        schema, name = table.split(".")
        if exists(con, schema, name):
            # Fixed table and column names from this function's own list.
            row = con.execute(f"select run_id from {table} where run_id is not null order by {ts} desc nulls last "
                              "limit 1").fetchone()
            if row:
                return row[0]
    return None


def audit_data(con, run_id: str | None = None, generated_at: dt.datetime | None = None) -> dict:
    if not exists(con, "quality", "check_results"):
        raise AuditError("the warehouse has no quality results yet: run `kpiwatch run` first")
    run_id = run_id or latest_run(con)
    if run_id is None:
        raise AuditError("no run found in the warehouse: run `kpiwatch run` first")
    known = con.execute("select count(*) from quality.check_results where run_id = ?", [run_id]).fetchone()[0]
    if exists(con, "publish", "decisions"):
        known += con.execute("select count(*) from publish.decisions where run_id = ?", [run_id]).fetchone()[0]
    if not known:
        raise AuditError(f"run {run_id!r} is not in the warehouse")
    if generated_at is None:
        from pipelines.clock import command_now

        generated_at = command_now()  # outside a run: KPIWATCH_NOW, else the wall clock
    d: dict = {"run_id": run_id, "generated_at": generated_at}
    settings = _rows(con, "select * from catalog.settings")
    d["as_of"] = settings[0]["as_of"] if settings else None
    d["catalog_name"] = settings[0].get("catalog_name") if settings else None
    d["batches"] = _rows(con, """select batch_id, source_id, department_id, source_file, source_sha256, source_query,
                                        rows_in, rows_accepted, rows_quarantined, loaded_at
                                 from raw.batches where run_id = ? order by source_id, loaded_at""", [run_id])
    d["checks"] = _rows(con, """
        select source_id, department_id, batch_id, suite, check_name, expectation_type, column_name, severity,
               success, observed, expected, unexpected_count, checked_at
        from quality.check_results where run_id = ? and suite <> 'dbt'
        order by success, case severity when 'critical' then 0 else 1 end, source_id, batch_id, suite, check_name,
                 column_name, department_id, checked_at""",
        [run_id])
    d["dbt_tests"] = _rows(con, """
        select source_id, check_name, severity, success, observed from quality.check_results
        where run_id = ? and suite = 'dbt' order by success, source_id, check_name, severity, observed""", [run_id])
    d["quarantine_counts"] = _rows(con, """
        select q.source_id, q.reason, count(*) as rows, count(distinct q.batch_id) as batches
        from raw.quarantine q join raw.batches b using (batch_id)
        where b.run_id = ? group by q.source_id, q.reason order by q.source_id, rows desc, q.reason""", [run_id])
    # Rows the sources' row rules left out (subtotals, national rows, footnotes), per batch and rule.
    d["excluded"] = _rows(con, """
        select x.source_id, b.source_file, x.rule, x.rows, x.row_numbers, b.sheet, b.layout, b.period_origin
        from raw.excluded_rows x join raw.batches b using (batch_id)
        where b.run_id = ? order by x.source_id, b.source_file, x.rule""", [run_id]) \
        if exists(con, "raw", "excluded_rows") else []
    d["quarantine_samples"] = _rows(con, """
        select source_id, batch_id, source_file, row_number, reason, detail, record
        from (select q.source_id, q.batch_id, b.source_file, q.row_number, q.reason, q.detail, q.record,
                     row_number() over (partition by q.source_id, q.reason
                                        order by q.batch_id, q.row_number nulls last) as sample_no
              from raw.quarantine q join raw.batches b using (batch_id)
              where b.run_id = ?) s
        where sample_no <= ?
        order by source_id, reason, row_number, batch_id""", [run_id, SAMPLES_PER_REASON])
    d["drift"] = _rows(con, """
        select kind, severity, department_id, source_id, kpi_id, period, observed, expected, lower_bound,
               upper_bound, score, threshold, method, detail, is_latest
        from quality.drift_findings where run_id = ?
        order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, kind, kpi_id, source_id, period""",
        [run_id]) if exists(con, "quality", "drift_findings") else []
    d["decisions"] = _rows(con, """select department_id, published, reason, blocking_checks, kpis, decided_at
                                   from publish.decisions where run_id = ? order by department_id""",
                           [run_id]) if exists(con, "publish", "decisions") else []
    d["figures"] = _figures(con, run_id, d["decisions"])
    d["alerts"] = _alerts(con, run_id)
    return d


def _figures(con, run_id: str, decisions: list[dict]) -> list[dict]:
    """Figures published in the run, plus the previously published figures that a blocked
    department keeps (marked stale)."""
    if not exists(con, "publish", "kpi_figures"):
        return []
    rows = _rows(con, """select f.*, true as published_in_run from publish.kpi_figures f where f.run_id = ?
                         order by f.department_id, f.kpi_id""", [run_id])
    blocked = {d["department_id"]: d for d in decisions if not d["published"]}
    if blocked:
        kept = _rows(con, """
            select * from (
                select f.*, false as published_in_run,
                       row_number() over (partition by f.kpi_id order by f.published_at desc nulls last) as _kept_rank
                from publish.kpi_figures f
                where f.published_at < (select min(decided_at) from publish.decisions where run_id = ?)
                  and f.department_id = any(?)) k
            where _kept_rank = 1
            order by department_id, kpi_id""", [run_id, sorted(blocked)])
        for r in kept:
            r.pop("_kept_rank", None)
            r["data_trust"] = "stale"
            r["data_trust_reason"] = f"publication blocked in this run: {blocked[r['department_id']]['reason']}"
        rows += kept
    for r in rows:
        try:
            r["evidence"] = json.loads(r.get("evidence_json") or "null") or {}
        except ValueError:
            r["evidence"] = {}
    return rows


def _alerts(con, run_id: str) -> dict:
    """alert_log rows of the run (sent / failed / silenced / ..., with detail), firing alerts not
    notified again in the run (deduplicated, or acknowledged), and the silences. The alerting
    tables belong to another stage: only columns and tables that exist are read."""
    out: dict = {"available": exists(con, "alerting", "alert_log"), "log": [], "suppressed": [], "silences": []}
    if not out["available"]:
        return out
    log_cols = columns(con, "alerting", "alert_log")
    state = exists(con, "alerting", "alert_state")
    wanted = ["fingerprint", "rule", "event", "channel", "sink", "outcome", "detail", "logged_at", "silence_id",
              "suppressed_reason", "reason"]
    # Column names come from the fixed list above, filtered by what the table has.
    select = ", ".join(f"l.{c}" for c in wanted if c in log_cols)
    out["log"] = _rows(con, f"""
        select {select}{', s.severity, s.summary, s.subject' if state else ''}
        from alerting.alert_log l {'left join alerting.alert_state s using (fingerprint)' if state else ''}
        where l.run_id = ? order by l.logged_at, l.rule, l.fingerprint, l.channel, l.event, l.outcome""", [run_id])
    if exists(con, "alerting", "silences"):
        out["silences"] = _rows(con, "select * from alerting.silences order by silence_id")
    reasons = {x.get("silence_id"): x for x in out["silences"]}
    for row in out["log"]:
        sil = reasons.get(row.get("silence_id")) if row.get("silence_id") else None
        if sil:
            row["silence"] = (f"silence {sil.get('silence_id')} on {sil.get('target_type')} {sil.get('target')}: "
                              f"{sil.get('reason')} (until {sil.get('ends_at')})")
    if state:
        state_cols = columns(con, "alerting", "alert_state")
        want = [c for c in ("fingerprint", "labels_hash", "rule", "subject", "severity", "summary", "state",
                            "first_fired_at", "last_notified_at", "last_seen_at", "channel") if c in state_cols]
        out["suppressed"] = _rows(con, f"""
            select {', '.join('s.' + c for c in want)} from alerting.alert_state s
            where s.state = 'firing'
              and not exists (select 1 from alerting.alert_log l where l.run_id = ? and l.fingerprint = s.fingerprint)
            order by s.rule, s.subject""", [run_id])
        if exists(con, "alerting", "acks") and {"fingerprint", "labels_hash"} <= columns(con, "alerting", "acks"):
            acks = {(a["fingerprint"], a["labels_hash"]): a for a in _rows(con, "select * from alerting.acks")}
            for row in out["suppressed"]:
                ack = acks.get((row.get("fingerprint"), row.get("labels_hash")))
                if ack:
                    row["ack"] = f"acknowledged by {ack.get('acked_by')}: {ack.get('note') or ''}".strip()
    return out


# ---- HTML ---------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:2rem auto;max-width:1200px;
 color:#1b1f24;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem;
 margin-top:2.2rem}h3{font-size:1.05rem;margin-bottom:.3rem}
.meta{color:#57606a}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.82rem;word-break:break-all}
.pill{display:inline-block;border-radius:.6rem;padding:0 .5rem;font-size:.8rem;font-weight:600}
.pass,.trusted,.published,.green,.sent{background:#dafbe1;color:#116329}
.fail,.failed_checks,.blocked,.red,.critical,.failed{background:#ffebe9;color:#a40e26}
.warn,.warning,.amber,.stale,.held,.rerouted{background:#fff8c5;color:#7d4e00}
.silenced{background:#eaeef2;color:#57606a}
.anomalous{background:#fbefff;color:#6e40c9}.info,.grey{background:#eaeef2;color:#57606a}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}.card{border:1px solid #d0d7de;border-radius:.4rem;padding:.5rem .8rem;
 min-width:9rem}.card b{display:block;font-size:1.3rem}
.fig{border:1px solid #d0d7de;border-radius:.4rem;padding:.4rem .8rem;margin:.6rem 0}
details summary{cursor:pointer;font-weight:600}
@media print{details{display:block}}
"""
_PILL = {"pass", "fail", "trusted", "stale", "failed_checks", "anomalous", "published", "blocked", "green", "amber",
         "sent", "failed", "silenced", "held", "rerouted",
         "red", "grey", "critical", "warning", "warn", "info"}


def e(v) -> str:
    """Escape one value for HTML text or a quoted attribute."""
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    elif isinstance(v, dt.datetime):
        v = v.strftime("%Y-%m-%d %H:%M:%S")
    return html.escape(str(v), quote=True)


def pill(value) -> str:
    cls = str(value) if str(value) in _PILL else "info"  # class names only from the fixed set
    return f'<span class="pill {cls}">{e(value)}</span>'


def table(headers: list[str], rows: list[list[str]], empty: str = "none") -> str:
    """headers are plain text (escaped here); cells are HTML already escaped by the caller."""
    if not rows:
        return f"<p class=\"meta\">{e(empty)}</p>"
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _result(success: bool) -> str:
    return pill("pass") if success else pill("fail")


def render_html(d: dict, data_docs_href: str | None) -> str:
    parts = [f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kpiwatch audit report — run {e(d['run_id'])}</title><style>{CSS}</style></head><body>
<h1>kpiwatch data-quality audit report</h1>
<p class="meta">{e(d.get('catalog_name') or 'kpiwatch')} · run <code>{e(d['run_id'])}</code> · reporting date
{e(d['as_of'])} · generated {e(d['generated_at'])} UTC</p>
<p class="meta">Contents: <a href="#summary">run summary</a> · <a href="#publication">publication</a> ·
<a href="#checks">checks</a> · <a href="#quarantine">quarantine</a> · <a href="#drift">drift</a> ·
<a href="#alerts">alerts</a> · <a href="#evidence">evidence</a> · <a href="#data-docs">GX Data Docs</a></p>"""]
    parts.append(_summary(d))
    parts.append(_publication(d))
    parts.append(_checks(d))
    parts.append(_quarantine(d))
    parts.append(_drift(d))
    parts.append(_alerts_html(d))
    parts.append(_evidence(d))
    if data_docs_href:
        parts.append(f"""<h2 id="data-docs">GX Data Docs</h2><p>The Great Expectations Data Docs of this run's
validations (each source batch's suite and the mart contract, with every expectation's observed value) are at
<a href="{e(data_docs_href)}">{e(data_docs_href)}</a> (a local folder beside this report; its pages load
GX's styles from the web, this report does not).</p>""")
    else:
        parts.append('<h2 id="data-docs">GX Data Docs</h2><p class="meta">Not built for this report (--no-data-docs).</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary(d: dict) -> str:
    checks = d["checks"]
    failed = [c for c in checks if not c["success"]]
    crit = [c for c in failed if c["severity"] == "critical"]
    drift = [f for f in d["drift"] if f["severity"] != "info"]
    sent = sum(1 for a in d["alerts"]["log"] if a.get("outcome") == "sent")
    blocked = [x for x in d["decisions"] if not x["published"]]
    cards = [("new batches", len(d["batches"])), ("rows in", sum(b["rows_in"] for b in d["batches"])),
             ("rows landed", sum(b["rows_accepted"] for b in d["batches"])),
             ("rows quarantined", sum(b["rows_quarantined"] for b in d["batches"])),
             ("checks run", len(checks) + len(d["dbt_tests"])), ("checks failed", len(failed)),
             ("critical failures", len(crit)), ("drift findings", len(drift)),
             ("departments blocked", len(blocked)), ("alert notifications sent", sent)]
    html_cards = "".join(f'<div class="card"><b>{e(v)}</b>{e(k)}</div>' for k, v in cards)
    rows = [[e(b["source_id"]), f'<span class="mono">{e(b["batch_id"])}</span>',
             f'<span class="mono">{e(b["source_file"] or b["source_query"])}</span>',
             f'<span class="mono">{e(b["source_sha256"])}</span>', e(b["rows_in"]),
             e(b["rows_accepted"]), e(b["rows_quarantined"]), e(b["loaded_at"])] for b in d["batches"]]
    return (f'<h2 id="summary">1. Run summary</h2><div class="cards">{html_cards}</div>'
            "<h3>Batches landed in this run</h3>"
            + table(["source", "batch", "file / query", "sha256", "rows in", "landed", "quarantined", "loaded at"],
                    rows, "no new batch in this run (every source file had been landed before)"))


def _publication(d: dict) -> str:
    rows = []
    for x in d["decisions"]:
        rows.append([e(x["department_id"]), pill("published" if x["published"] else "blocked"), e(x["kpis"]), e(x["reason"])])
    return ('<h2 id="publication">2. Publication decisions</h2><p>A department\'s figures are published only when no '
            "critical check failed on its sources' latest batches or on its figures; otherwise its previously "
            "published figures stay, marked <em>stale</em>. Warnings never block.</p>"
            + table(["department", "decision", "KPIs", "reason"], rows, "no publication step ran in this run"))


def _checks(d: dict) -> str:
    files = {b["batch_id"]: b.get("source_file") or b.get("source_query") for b in d["batches"]}
    groups: dict[str, list[dict]] = {}
    for c in d["checks"]:
        groups.setdefault(c["batch_id"], []).append(c)

    def rank(item):
        cs = item[1]
        return (not any(not c["success"] and c["severity"] == "critical" for c in cs),
                not any(not c["success"] for c in cs), item[0])

    out = ['<h2 id="checks">3. Every check that ran</h2>'
           "<p>Per source batch: kpiwatch's own checks (suite <code>kpiwatch</code>: empty file, schema contract, "
           "mapped columns, parseable values, rejection rate) and the source's GX suite. Then the published mart's "
           "contract (suite <code>mart_fct_kpi_progress</code>, judged per department) and the dbt tests. "
           "Failures first.</p>"]
    if not groups:
        out.append('<p class="meta">no check ran in this run</p>')
    for batch_id, cs in sorted(groups.items(), key=rank):
        failed = sum(1 for c in cs if not c["success"])
        mart = cs[0]["suite"].startswith("mart_")
        title = (f"Mart contract {e(cs[0]['suite'])}" if mart else
                 f'Batch <code>{e(batch_id)}</code> — {e(cs[0]["source_id"])}'
                 + (f' · <span class="mono">{e(files.get(batch_id))}</span>' if files.get(batch_id) else ""))
        rows = [([e(c["department_id"])] if mart else [])
                + [e(c["suite"]), e(c["check_name"]) + f' <span class="meta">({e(c["expectation_type"])}'
                   + (f' on {e(c["column_name"])}' if c["column_name"] else "") + ")</span>",
                   e(c["observed"]), e(c["expected"]), _result(c["success"]), pill(c["severity"])] for c in cs]
        out.append(f"<h3>{title}: {len(cs) - failed} passed, {failed} failed</h3>"
                   + table((["department"] if mart else []) + ["suite", "expectation", "observed", "expected", "result",
                                                               "severity"], rows))
    dbt_failed = [t for t in d["dbt_tests"] if not t["success"]]
    dbt_rows = [[e(t["source_id"]), e(t["check_name"]), e(t["observed"]), _result(t["success"]), pill(t["severity"])]
                for t in d["dbt_tests"]]
    out.append(f"<details><summary>dbt tests: {len(d['dbt_tests']) - len(dbt_failed)} passed, {len(dbt_failed)} failed"
               "</summary>" + table(["model", "test", "observed", "result", "severity"], dbt_rows, "no dbt test recorded")
               + "</details>")
    return "".join(out)


def _quarantine(d: dict) -> str:
    counts = [[e(q["source_id"]), e(q["reason"]), e(q["rows"]), e(q["batches"])] for q in d["quarantine_counts"]]
    samples = [[e(s["source_id"]), f'<span class="mono">{e(s["source_file"] or s["batch_id"])}</span>',
                e(s["row_number"] if s["row_number"] is not None else "whole batch"), e(s["reason"]), e(s["detail"]),
                f'<span class="mono">{e(s["record"])}</span>'] for s in d["quarantine_samples"]]
    return ('<h2 id="quarantine">4. Quarantined rows</h2><p>Rows of this run\'s batches that did not land, with the '
            "reason. Nothing is dropped: every input row is landed or quarantined here with its raw record.</p>"
            "<h3>Counts by reason</h3>" + table(["source", "reason", "rows", "batches"], counts, "no row quarantined in this run")
            + f"<h3>Samples (up to {SAMPLES_PER_REASON} per reason)</h3>"
            + table(["source", "file", "row", "reason", "detail", "raw record"], samples, "none")
            + _excluded(d))


def _excluded(d: dict) -> str:
    """Rows left out by the sources' row rules: counted per batch under the rule's name, neither
    landed nor rejected (not in the rejection rate)."""
    rows = [[e(x["source_id"]), f'<span class="mono">{e(x["source_file"])}</span>',
             e(x["sheet"] or ""), e(x["rule"]), e(x["rows"]), f'<span class="mono">{e(x["row_numbers"])}</span>',
             e(x["period_origin"] or "")] for x in d.get("excluded", [])]
    return ("<h3>Excluded by row rules</h3><p>Rows a source's configuration leaves out on purpose (subtotals, "
            "national rows, footnotes), per file and rule, with their record numbers: not rejections.</p>"
            + table(["source", "file", "sheet", "rule", "rows", "records", "period from"], rows,
                    "no row excluded by a rule in this run"))


def _drift(d: dict) -> str:
    rows = [[pill(f["severity"]), e(f["kind"]), e(f["kpi_id"] or f["source_id"]), e(f["period"]),
             "yes" if f["is_latest"] else "no", e(f["observed"]), e(f["expected"]),
             f"{e(f['lower_bound'])} … {e(f['upper_bound'])}" if f["lower_bound"] is not None else "–",
             e(f["score"]), e(f["threshold"]), e(f["method"]), e(f["detail"])] for f in d["drift"]]
    return ('<h2 id="drift">5. Drift findings</h2><p>KPI values against their own history (robust z, '
            "seasonality-aware), level shifts, source volume against typical volume, and missing submissions "
            "against each source's cadence with a grace period (docs/quality.md). <em>info</em> findings are "
            "recorded only.</p>"
            + table(["severity", "kind", "KPI / source", "period", "latest", "observed", "expected", "normal band",
                     "score", "threshold", "method", "detail"], rows, "no drift finding in this run"))


def _alerts_html(d: dict) -> str:
    a = d["alerts"]
    if not a["available"]:
        return '<h2 id="alerts">6. Alerts</h2><p class="meta">No alert log in the warehouse (the alerting step has not run).</p>'
    sent = [[pill(x.get("outcome")), e(x.get("severity")), e(x.get("summary") or x.get("subject")), e(x.get("rule")),
             e(x.get("event")), e(x.get("channel")), e(x.get("sink")),
             e(" — ".join(str(x[c]) for c in ("silence", "detail", "reason", "suppressed_reason") if x.get(c))
               or (f"silence {x['silence_id']}" if x.get("silence_id") else ""))]
            for x in a["log"]]
    sup = []
    for s in a["suppressed"]:
        why = s.get("ack") or (f"unchanged since notified at {s.get('last_notified_at')}: not sent again "
                               "(deduplicated by fingerprint)")
        sup.append([e(s.get("severity")), e(s.get("summary") or s.get("subject")), e(s.get("rule")),
                    e(s.get("channel")), e(why)])
    sil = ""
    if a["silences"]:
        keys = list(a["silences"][0])
        sil = "<h3>Silences</h3>" + table(keys, [[e(r[k]) for k in keys] for r in a["silences"]])
    return ('<h2 id="alerts">6. Alerts sent and suppressed</h2><h3>Notifications attempted in this run</h3>'
            + table(["outcome", "severity", "alert", "rule", "event", "recipient", "sink", "detail"], sent,
                    "no notification in this run")
            + "<h3>Firing but not notified in this run</h3>"
            + table(["severity", "alert", "rule", "recipient", "why"], sup, "none") + sil)


def _evidence(d: dict) -> str:
    out = ['<h2 id="evidence">7. Evidence for each published figure</h2><p>Each figure published (or kept) by '
           "this run, traced to the source rows behind it: file and sha256 (or query), batch, row numbers, the "
           "checks of that batch and the run that landed it. The same trail is printed by "
           "<code>kpiwatch explain KPI_ID PERIOD</code>.</p>"]
    if not d["figures"]:
        out.append('<p class="meta">No figure was published in this run.</p>')
    for f in d["figures"]:
        period = f["period"].strftime("%Y-%m") if f.get("period") else "–"
        head = (f'<div class="fig" id="fig-{e(f["kpi_id"])}"><h3>{e(f["kpi_id"])} {e(period)} — {e(f["kpi_name"])}</h3>'
                f'<p>{e(f["department_id"])} · value <b>{e(f["actual"])}</b> {e(f["unit"])} · status {pill(f["status"])} '
                f'(expected {e(f["expected_value"])}) · data trust {pill(f["data_trust"])} '
                f'<span class="meta">{e(f["data_trust_reason"])}</span><br>'
                + (f'published in run <code>{e(f["run_id"])}</code> at {e(f["published_at"])} UTC'
                   if f["published_in_run"] else
                   f'<b>kept from run</b> <code>{e(f["run_id"])}</code> ({e(f["published_at"])} UTC): publication blocked in this run')
                + "</p>")
        ev = f["evidence"] or {}
        rows = []
        for b in ev.get("batches", []):
            rows.append([f'<span class="mono">{e(b.get("source_file") or b.get("source_query"))}</span>',
                         f'<span class="mono">{e(b.get("source_sha256"))}</span>',
                         f'<span class="mono">{e(b.get("batch_id"))}</span>',
                         e(", ".join(str(r) for r in b.get("rows", []))),
                         e(f"{b.get('checks_passed')} passed") + (
                             "; failed: " + e(", ".join(b.get("checks_failed", []))) if b.get("checks_failed") else ""),
                         f'<span class="mono">{e(b.get("landed_run_id"))}</span>'])
        out.append(head + table(["source file / query", "sha256", "batch", "rows", "checks", "landed in run"], rows,
                                "no source row (no data landed for this KPI)") + "</div>")
    return "".join(out)


def write_report(warehouse: Path, out: Path, run_id: str | None = None, data_docs: bool = True,
                 generated_at: dt.datetime | None = None) -> tuple[Path, Path | None]:
    """Write the report (and Data Docs in `<out dir>/data_docs/`); return both paths."""
    from pipelines.warehouse import connect

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    docs_index = None
    with connect(warehouse, read_only=True) as con:
        d = audit_data(con, run_id, generated_at)
        if data_docs:
            from pipelines.quality.data_docs import build_data_docs

            batch_ids = [b.get("batch_id") for f in d["figures"] for b in (f["evidence"] or {}).get("batches", [])]
            docs_index = build_data_docs(con, out.parent / "data_docs", d["run_id"], batch_ids)
    href = docs_index.relative_to(out.parent).as_posix() if docs_index else None
    from pipelines.reporting.files import ReportWriteError, write_text_atomic

    try:
        write_text_atomic(out, render_html(d, href))
    except ReportWriteError as exc:
        raise AuditError(exc.strerror) from None
    return out, docs_index
