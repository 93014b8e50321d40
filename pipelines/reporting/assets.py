"""The reporting stage: after publication and alerts, every run writes the owner's scorecard
and the auditor's report beside the warehouse (<warehouse dir>/reports/), and keeps the
scorecard's data (publish.scorecard_snapshots) for `kpiwatch report --as-of DATE`."""

from pathlib import Path

import dagster as dg

from pipelines.config import DATA_TEAM_OWNER
from pipelines.resources import KpiwatchResource
from pipelines.warehouse import connect

SCORECARD_KEY = dg.AssetKey(["reports", "scorecard"])
AUDIT_KEY = dg.AssetKey(["reports", "audit_report"])
PUBLISH_KEY = dg.AssetKey(["publish", "kpi_status"])
SCORECARD_FILE = "scorecard.html"
AUDIT_FILE = "audit-report.html"


@dg.asset(key=SCORECARD_KEY, group_name="reporting", deps=[PUBLISH_KEY, dg.AssetKey("kpi_alerts")],
          kinds={"html", "duckdb"}, owners=[DATA_TEAM_OWNER])
def scorecard(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource) -> dg.MaterializeResult:
    """The owner's scorecard (reports/scorecard.html beside the warehouse): a tile per KPI with
    its chart, status and data trust in words, a milestone timeline and a department roll-up.
    Its data is kept in publish.scorecard_snapshots for as-of views."""
    from pipelines.reporting.files import write_text_atomic
    from pipelines.reporting.scorecard import render, save_snapshot

    now = kpiwatch.run_now(context)
    with connect(kpiwatch.warehouse) as con:
        data = save_snapshot(con, context.run_id, now)
    reports = kpiwatch.settings().reports_dir
    reports.mkdir(parents=True, exist_ok=True)
    path = write_text_atomic(reports / SCORECARD_FILE, render(data, now))
    statuses = {}
    for p in data["published"]:
        statuses[p["status"]] = statuses.get(p["status"], 0) + 1
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "kpis": len(data["kpis"]),
        "departments": len(data["departments"]),
        "published_statuses": ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "none",
        "bytes": path.stat().st_size,
    })


@dg.asset(key=AUDIT_KEY, group_name="reporting", deps=[PUBLISH_KEY, dg.AssetKey("kpi_alerts")],
          kinds={"html", "great_expectations"}, owners=[DATA_TEAM_OWNER])
def audit_report(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource) -> dg.MaterializeResult:
    """The auditor's report of this run (reports/audit-report.html, GX Data Docs in
    reports/data_docs/): every check, quarantined rows, drift findings, alerts sent and
    suppressed, and the evidence behind each published figure."""
    from pipelines.reporting.audit import write_report

    path, docs = write_report(Path(kpiwatch.warehouse), kpiwatch.settings().reports_dir / AUDIT_FILE, context.run_id,
                              generated_at=kpiwatch.run_now(context))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "data_docs": dg.MetadataValue.path(str(docs)) if docs else "not built",
        "bytes": path.stat().st_size,
    })
