import datetime as dt

import dagster as dg

from pipelines.resources import KpiwatchResource
from pipelines.warehouse import connect

MART_DEPS = ["fct_kpi_progress", "fct_milestones", "fct_source_freshness", "fct_kpi_anomalies", dg.AssetKey(["quality", "check_results"])]


@dg.asset(group_name="alerting", deps=MART_DEPS, kinds={"slack", "duckdb"})
def kpi_alerts(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource) -> dg.MaterializeResult:
    """Evaluates the alert rules (alerts/rules.yml) against the marts and quality results and
    notifies KPI owners (Slack when SLACK_BOT_TOKEN is set, else console and a JSONL file).
    Alert state is kept by fingerprint, so a repeated run sends nothing new."""
    from alerts.engine import dispatch, evaluate
    from alerts.rules import load_rules
    from alerts.sinks import sinks_from_env

    settings = kpiwatch.settings()
    rules = load_rules(settings.rules_file) if settings.rules_file else load_rules()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with connect(kpiwatch.warehouse) as con:
        found = evaluate(con, rules, as_of=kpiwatch.reporting_date())
        summary = dispatch(con, found, sinks_from_env(settings.alerts_path), run_id=context.run_id, now=now)
    context.log.info(f"alerts: {summary}")
    return dg.MaterializeResult(metadata={
        "firing": len(found),
        "sent": summary.sent,
        "failed": summary.failed,
        "resolved": summary.resolved,
        "alerts_file": str(settings.alerts_path),
    })
