"""The alerting stage's schedule and sensor: the weekly digest, and pipeline-failure alerts."""

import dagster as dg

from pipelines.resources import KpiwatchResource

DIGEST_JOB = "kpiwatch_digest"


@dg.op(description="Builds this week's KPI digest per owner and per department and delivers the ones not sent yet.")
def send_weekly_digest(context: dg.OpExecutionContext, kpiwatch: KpiwatchResource) -> None:
    from pipelines.alerting.runtime import send_digests

    settings = kpiwatch.settings()
    digests, queued, delivery = send_digests(settings, run_id=context.run_id, as_of=kpiwatch.reporting_date(context),
                                             clock=kpiwatch.run_clock(context))
    context.log.info(f"digests: {len(digests)} built, {len(queued)} new this week; {delivery}")
    for issue in delivery.issues:
        context.log.warning(f"digest delivery to {issue.channel}: {issue.detail} — {issue.action}")


@dg.job(name=DIGEST_JOB, description="The weekly KPI digest per owner and per department (Slack or console + JSONL).")
def digest_job():
    send_weekly_digest()


digest_schedule = dg.ScheduleDefinition(
    name="kpiwatch_weekly_digest",
    job=digest_job,
    cron_schedule="0 7 * * 1",
    execution_timezone="UTC",
    description="Weekly KPI digest, Mondays at 07:00 UTC.",
)


def _failure_details(context: dg.RunFailureSensorContext) -> tuple[list[str], str]:
    """(failed step keys, the first line of the most telling error message)."""
    steps: list[str] = []
    errors: list[str] = []
    try:
        records = context.instance.all_logs(context.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    except Exception:  # an instance without event logs: the run failure message still helps
        records = []
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.step_key and event.step_key not in steps:
            steps.append(event.step_key)
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and getattr(error, "cause", None) is not None:
            error = error.cause  # Dagster wraps the op's exception: report the op's own error
        if error is not None and error.message and error.message.strip():
            errors.append(error.message.strip().splitlines()[0])
    message = next((e for e in errors if e), "") or (context.failure_event.message or "")
    return steps, message.strip().splitlines()[0] if message.strip() else ""


@dg.run_failure_sensor(
    name="kpiwatch_run_failure_alerts",
    description="Tells the data engineers' channel (the `pipeline_failure` route of the alert rules) "
                "when a kpiwatch run fails, through the same outbox as KPI alerts.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def run_failure_alerts(context: dg.RunFailureSensorContext, kpiwatch: KpiwatchResource):
    from alerts.conditions import pipeline_failure_alert
    from alerts.engine import run_alerts
    from alerts.sinks import redact

    from pipelines.alerting.runtime import links, load_rules_for, open_warehouse, transport_for
    from pipelines.clock import FixedClock, system_now

    settings = kpiwatch.settings()
    rules = load_rules_for(settings)
    run = context.dagster_run
    steps, error = _failure_details(context)
    stats = context.instance.get_run_stats(run.run_id) if hasattr(context.instance, "get_run_stats") else None
    started = None
    if stats is not None and getattr(stats, "start_time", None):
        import datetime as dt

        started = dt.datetime.fromtimestamp(stats.start_time, dt.timezone.utc).replace(tzinfo=None)
    alert = pipeline_failure_alert(rules, job_name=run.job_name, run_id=run.run_id, failed_steps=steps,
                                   error=redact(error), started_at=started)
    if alert is None:
        return dg.SkipReason("no enabled pipeline_failure rule in the alert rules")
    result = run_alerts(open_warehouse(settings), rules, transport_for(settings), run_id=f"sensor:{run.run_id}",
                        clock=FixedClock(settings.now or system_now()), alerts=[alert], resolve_kinds=(), links=links())
    context.log.info(f"pipeline failure of {run.job_name} ({run.run_id}) -> {alert.channel}: {result.delivery}")
