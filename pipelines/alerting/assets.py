import dagster as dg

from pipelines.config import DATA_TEAM_OWNER
from pipelines.resources import KpiwatchResource

# Alerts read the marts, the quality results, the drift findings and the published data trust.
MART_DEPS = ["fct_kpi_progress", "fct_milestones", "fct_source_freshness", "fct_kpi_anomalies",
             dg.AssetKey(["quality", "check_results"]), dg.AssetKey(["quality", "drift_findings"]),
             dg.AssetKey(["publish", "kpi_status"])]


@dg.asset(group_name="alerting", deps=MART_DEPS, kinds={"slack", "duckdb"}, owners=[DATA_TEAM_OWNER])
def kpi_alerts(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource) -> dg.MaterializeResult:
    """Evaluates the alert rules (alerts/rules.yml) against the marts and quality results,
    routes each alert (owner, department channel, fallback), groups everything one recipient
    should hear into one message, and delivers it through the outbox in `alerting.outbox`
    (Slack when SLACK_BOT_TOKEN is set, else console and a JSONL file). State is kept by
    fingerprint: a repeated run sends nothing new; reminders, escalations, silences and
    resolved notices follow the rules file."""
    from alerts.engine import run_alerts

    from pipelines.alerting.runtime import links, load_rules_for, open_warehouse, transport_for

    settings = kpiwatch.settings()
    rules = load_rules_for(settings)
    run = run_alerts(open_warehouse(settings), rules, transport_for(settings), run_id=context.run_id,
                     clock=kpiwatch.run_clock(context), as_of=kpiwatch.reporting_date(context), links=links())
    context.log.info(f"alerts: {run}")
    for issue in run.delivery.issues:
        context.log.warning(f"alert delivery to {issue.channel}: {issue.detail} — {issue.action}")
    return dg.MaterializeResult(metadata={
        "firing": len(run.alerts),
        "notices": run.dispatch.notifications,
        "messages": len(run.dispatch.messages),
        "silenced": run.dispatch.silenced,
        "resolved": run.dispatch.resolved,
        "delivered": run.delivery.sent + run.delivery.recovered,
        "rerouted": run.delivery.rerouted,
        "failed": run.delivery.failed,
        "pending": run.delivery.pending + run.delivery.held,
        "delivery": str(run.delivery),
        "alerts_file": str(settings.alerts_path),
    })
