"""evaluate() against a small DuckDB warehouse, and dispatch()'s state machine with a clock.

Delivery here goes to an in-memory sink; tests/integration/test_alerts_slack.py runs the same
lifecycle through slack-sdk's WebClient against a local Slack Web API server.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import duckdb
import pytest

from alerts.delivery import deliver, file_warehouse
from alerts.engine import AlertsError, dispatch, evaluate, run_alerts
from alerts.model import Alert, fingerprint, labels_hash
from alerts.rules import load_rules
from alerts.sinks import Delivered, DeliveryError, Transport
from alerts.store import ack, add_silence, expire_silence
from tests.unit.test_alerts_warehouse import AS_OF, EXPECTED_ALERTS, EXPECTED_DRIFT_ALERTS, build_warehouse

T0 = datetime(2026, 4, 20, 6, 0)


class Clock:
    """An injectable clock: tests move time by hand."""

    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class MemorySink:
    """A delivering sink that keeps what it got; `fail_with` makes it raise."""

    name = "memory"

    def __init__(self):
        self.got = []
        self.fail_with: DeliveryError | None = None

    def post(self, out):
        if self.fail_with is not None:
            raise self.fail_with
        self.got.append(out)
        return Delivered(channel=out.channel, ts=f"ts-{len(self.got)}")

    def find(self, out):
        return next((Delivered(out.channel, "found", recovered=True) for o in self.got if o.outbox_id == out.outbox_id), None)

    def notes(self, start: int = 0):
        return [(n["event"], n["rule"], n["subject"], o.channel) for o in self.got[start:] for n in o.notifications]


@pytest.fixture
def wh(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    build_warehouse(duckdb.connect(str(path))).close()
    return file_warehouse(path)


@pytest.fixture
def rules():
    return load_rules()


@pytest.fixture
def sink():
    return MemorySink()


@pytest.fixture
def clock():
    return Clock()


def cycle(wh, rules, sink, clock, run_id):
    return run_alerts(wh, rules, Transport(sink), run_id=run_id, clock=clock, as_of=AS_OF)


def query(wh, sql, params=()):
    with wh() as con:
        cursor = con.execute(sql, list(params))
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def state_of(wh, fp):
    found = query(wh, "select * from alerting.alert_state where fingerprint = ?", [fp])
    return found[0] if found else None


# ----------------------------------------------------------------------------- fingerprints


def test_fingerprint_is_stable_and_ignores_values():
    # Pinned: changing the scheme would re-notify every open alert after an upgrade.
    assert fingerprint("kpi_off_trajectory", "wait_time") == "29d1f41a15228863"
    red = Alert(rule="r", kind="kpi_status", severity="critical", subject="k", title="t", text="x",
                labels={"status": "red"})
    amber = Alert(rule="r", kind="kpi_status", severity="warning", subject="k", title="other", text="y",
                  labels={"status": "amber"})
    assert red.fingerprint == amber.fingerprint == fingerprint("r", "k")
    assert red.labels_hash != amber.labels_hash
    assert labels_hash({"a": 1, "b": 2}) == labels_hash({"b": 2, "a": 1})


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_finds_and_routes_the_scenario(wh, rules):
    with wh() as con:
        alerts = evaluate(con, rules, as_of=AS_OF)
    assert [(a.rule, a.subject, a.channel) for a in alerts] == EXPECTED_ALERTS
    by_key = {(a.rule, a.subject): a for a in alerts}

    red = by_key["kpi_off_trajectory", "wait_time"]
    assert red.severity == "critical" and red.route == "owner"
    assert red.kpi_id == "wait_time" and red.department_id == "health"
    assert red.fields["Actual"] == "18.5 days"
    assert red.fields["Expected (trajectory)"] == "14 days"
    assert red.fields["Target"] == "12 days" and red.fields["Due date"] == "2026-12-31"
    assert red.fields["Forecast"] == "16.25 days (will miss)"
    assert red.fields["Data trust"] == "failed_checks"
    assert red.fields["Owner"] == "Ann Owner"
    assert red.fields["Change"] == "still red; +2.5 days since 2026-02"
    assert red.contacts == {"owner": "U0ANN", "department": "#health-kpis", "department_head": "U0HAL"}
    assert (red.dagster_path, red.report_anchor) == ("assets/fct_kpi_progress", "kpi-wait_time")

    amber = by_key["kpi_off_trajectory", "bus_punctuality"]
    assert amber.severity == "warning" and amber.route == "department"  # no owner Slack id
    assert amber.title == "Bus punctuality is amber (was green)" and amber.fields["Change"] == "green → amber"

    missed = by_key["milestone_off_track", "m_wait_q1"]
    assert missed.severity == "critical" and missed.title.startswith("Milestone missed")
    assert missed.fields["Due date"] == "2026-03-31 (20 days ago)"
    assert by_key["source_overdue", "finance_xlsx"].route == "fallback"
    checks = by_key["critical_check_failed", "health_csv"]
    assert checks.labels == {"batch_id": "b-health-2", "checks": ["health_csv.not_null.value"]}
    assert checks.dagster_path == "assets/ingest/health_csv?view=checks"


def test_drift_findings_of_the_latest_evaluation_alert_and_clear(tmp_path, rules, sink, clock):
    path = tmp_path / "warehouse.duckdb"
    build_warehouse(duckdb.connect(str(path)), drift=True).close()
    wh = file_warehouse(path)
    with wh() as con:
        alerts = [a for a in evaluate(con, rules, as_of=AS_OF) if a.kind == "drift"]
    # the older evaluation's level shift, the info finding and the missing submission do not fire
    assert [(a.rule, a.subject, a.channel) for a in alerts] == EXPECTED_DRIFT_ALERTS
    outlier, volume = alerts
    assert outlier.severity == "critical" and outlier.title == "Unusual value: Median wait time"
    assert outlier.fields["Observed"] == "18.5 days" and outlier.fields["Expected"] == "15.8 days"
    assert "expected range 14.9 days to 16.7 days" in outlier.text and outlier.kpi_id == "wait_time"
    assert volume.severity == "warning" and volume.title == "Unusual volume: source health_csv"
    assert volume.fields["Observed"] == "130" and volume.kpi_id is None
    first = cycle(wh, rules, sink, clock, "run-1")
    assert {a.subject for a in first.alerts if a.kind == "drift"} == {a.subject for a in alerts}
    # a later evaluation that finds nothing resolves both
    with wh() as con:
        con.execute("insert into quality.drift_runs values ('r-next', ?, ?, 0)", [clock.advance(days=1), AS_OF])
    second = cycle(wh, rules, sink, clock, "run-2")
    assert not [a for a in second.alerts if a.kind == "drift"]
    assert second.dispatch.resolved == 2


def test_milestone_horizon_and_rule_matchers(wh, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(
        """
        fallback_channel: "#ops"
        rules:
          - {name: far, kind: milestone, severity: info, condition: {state_in: [at_risk], within_days: 300}}
          - {name: near, kind: milestone, severity: info, condition: {state_in: [at_risk], within_days: 30}}
          - {name: nhs_only, kind: kpi_status, severity: info, matchers: {tags: [nhs]}}
          - {name: red_only, kind: kpi_status, severity: info, severity_when: {red: critical},
             matchers: {severity: critical}}
          - {name: by_dept, kind: source_overdue, severity: info, matchers: {department: transport}}
          - {name: off, kind: anomaly, severity: info, enabled: false}
        """,
        encoding="utf-8",
    )
    with wh() as con:
        found = [(a.rule, a.subject) for a in evaluate(con, load_rules(path), as_of=AS_OF)]
    assert found == [("far", "m_bus_2026"), ("nhs_only", "wait_time"), ("red_only", "wait_time"),
                     ("by_dept", "transport_sql")]


def test_a_missing_table_is_an_error_not_silence(wh, rules):
    # Silence would resolve every open alert of that kind.
    with wh() as con:
        con.execute("drop table marts.fct_kpi_anomalies")
        with pytest.raises(AlertsError, match="marts.fct_kpi_anomalies"):
            evaluate(con, rules, as_of=AS_OF)


# ----------------------------------------------------------------------------- dispatch


def test_one_grouped_message_per_recipient_and_a_rerun_sends_nothing(wh, rules, sink, clock):
    first = cycle(wh, rules, sink, clock, "run-1")
    assert (first.dispatch.fired, first.dispatch.new, first.dispatch.notifications) == (7, 7, 7)
    channels = [o.channel for o in sink.got]
    assert sorted(channels) == sorted(set(channels)) == sorted({c for _, _, c in EXPECTED_ALERTS})
    by_channel = {o.channel: o for o in sink.got}
    assert [n["subject"] for n in by_channel["U0ANN"].notifications] == ["wait_time", "wait_time"]
    assert {n["rule"] for n in by_channel["U0ANN"].notifications} == {"kpi_off_trajectory", "sudden_jump"}
    assert first.delivery.sent == len(sink.got) == 5 and first.delivery.notifications_sent == 7

    clock.advance(days=1)
    second = cycle(wh, rules, sink, clock, "run-2")
    assert (second.dispatch.unchanged, second.dispatch.notifications, len(sink.got)) == (7, 0, 5)
    assert query(wh, "select count(*) n from alerting.alert_log where run_id = 'run-2'")[0]["n"] == 0
    state = state_of(wh, fingerprint("kpi_off_trajectory", "wait_time"))
    assert state["last_seen_at"] == clock.now and state["last_notified_at"] == T0


def test_state_and_outbox_are_committed_together_and_delivery_catches_up(wh, rules, sink, clock):
    sink.fail_with = DeliveryError("slack API error: internal_error (HTTP 500)", "transient", "http_500")
    first = cycle(wh, rules, sink, clock, "run-1")
    assert (first.dispatch.new, first.delivery.pending, first.delivery.sent) == (7, 5, 0)
    assert query(wh, "select count(*) n from alerting.alert_state where state = 'firing'")[0]["n"] == 7
    assert {r["status"] for r in query(wh, "select status from alerting.outbox")} == {"pending"}
    sink.fail_with = None

    clock.advance(hours=1)
    second = cycle(wh, rules, sink, clock, "run-2")
    assert second.dispatch.notifications == 0  # nothing decided twice ...
    assert second.delivery.sent == 5 and len(sink.got) == 5  # ... and nothing lost
    assert {r["status"] for r in query(wh, "select status from alerting.outbox")} == {"sent"}


def test_a_changed_status_renotifies_under_the_same_fingerprint(wh, rules, sink, clock):
    cycle(wh, rules, sink, clock, "run-1")
    fp = fingerprint("kpi_off_trajectory", "wait_time")
    with wh() as con:
        con.execute("update marts.fct_kpi_progress set status = 'amber', previous_status = 'red' "
                    "where kpi_id = 'wait_time' and is_latest")
    clock.advance(days=1)
    changed = cycle(wh, rules, sink, clock, "run-2")
    assert (changed.dispatch.changed, changed.dispatch.new, changed.dispatch.notifications) == (1, 0, 1)
    [note] = sink.got[-1].notifications
    assert (note["event"], note["fingerprint"], note["severity"]) == ("firing", fp, "warning")
    assert "red → amber" in json.dumps(sink.got[-1].payload, ensure_ascii=False)
    state = state_of(wh, fp)
    assert state["first_fired_at"] == T0 and state["changed_at"] == clock.now and state["notify_seq"] == 2


def test_a_cleared_condition_sends_one_resolved_notice_where_it_went(wh, rules, sink, clock):
    cycle(wh, rules, sink, clock, "run-1")
    with wh() as con:
        con.execute("update marts.fct_kpi_progress set status = 'green', previous_status = 'amber' "
                    "where kpi_id = 'bus_punctuality'")
    clock.advance(days=1)
    cleared = cycle(wh, rules, sink, clock, "run-2")
    assert cleared.dispatch.resolved == 1
    assert sink.notes(5) == [("resolved", "kpi_off_trajectory", "bus_punctuality", "C0TRANSPORT")]
    assert "Now green" in sink.got[-1].payload["text"]  # "back to green"
    state = state_of(wh, fingerprint("kpi_off_trajectory", "bus_punctuality"))
    assert state["state"] == "resolved" and state["resolved_at"] == clock.now

    clock.advance(days=1)
    again = cycle(wh, rules, sink, clock, "run-3")
    assert (again.dispatch.resolved, again.dispatch.notifications) == (0, 0)


def test_repeat_interval_and_acknowledgement(wh, rules, sink, clock):
    cycle(wh, rules, sink, clock, "run-1")
    clock.advance(days=6, hours=23)
    assert cycle(wh, rules, sink, clock, "early").dispatch.repeated == 0
    fp = fingerprint("kpi_off_trajectory", "wait_time")
    with wh() as con:
        ack(con, fp[:8], "Ann", "waiting list validation under way", clock())
    clock.advance(hours=1)  # 7 days: the weekly reminder is due, except for the acknowledged one
    due = cycle(wh, rules, sink, clock, "week")
    assert due.dispatch.repeated == 6 and due.dispatch.acknowledged == 1
    assert ("repeat", "kpi_off_trajectory", "wait_time", "U0ANN") not in sink.notes(5)
    assert ("repeat", "sudden_jump", "wait_time", "U0ANN") in sink.notes(5)
    # The next reminder is a week after this one.
    clock.advance(days=1)
    assert cycle(wh, rules, sink, clock, "next-day").dispatch.repeated == 0


def test_escalation_after_n_days_unless_acknowledged(wh, rules, sink, clock):
    cycle(wh, rules, sink, clock, "run-1")
    fp = fingerprint("milestone_off_track", "m_wait_q1")
    clock.advance(days=2, hours=23)
    assert cycle(wh, rules, sink, clock, "day-2").dispatch.escalated == 0
    clock.advance(hours=1)
    day3 = cycle(wh, rules, sink, clock, "day-3")
    assert day3.dispatch.escalated == 1
    assert sink.notes(5) == [("escalated", "milestone_off_track", "m_wait_q1", "U0HAL")]  # the health head
    assert "Not acknowledged 3 days after it became missed" in sink.got[-1].payload["text"]
    assert state_of(wh, fp)["escalated_at"] == clock.now
    clock.advance(days=1)
    assert cycle(wh, rules, sink, clock, "day-4").dispatch.escalated == 0  # once per state

    # A new episode (resolved, then missed again) escalates again only if not acknowledged.
    with wh() as con:
        con.execute("update marts.fct_milestones set state = 'met' where milestone_id = 'm_wait_q1'")
    cycle(wh, rules, sink, clock, "met")
    with wh() as con:
        con.execute("update marts.fct_milestones set state = 'missed' where milestone_id = 'm_wait_q1'")
    cycle(wh, rules, sink, clock, "missed-again")
    with wh() as con:
        ack(con, fp, "Mia", "recovery plan agreed with the board", clock())
    clock.advance(days=4)
    assert cycle(wh, rules, sink, clock, "later").dispatch.escalated == 0


def test_silence_suppresses_records_and_releases_on_expiry(wh, rules, sink, clock):
    with wh() as con:
        silence = add_silence(con, "kpi", "wait_time", clock() + timedelta(days=2), "data fix in progress", clock())
    first = cycle(wh, rules, sink, clock, "run-1")
    assert first.dispatch.silenced == 3  # red KPI, its jump, and its milestone
    assert {n[2] for n in sink.notes()} == {"bus_punctuality", "finance_xlsx", "transport_sql", "health_csv"}
    logged = query(wh, "select fingerprint, outcome, silence_id, detail from alerting.alert_log where outcome = 'silenced'")
    assert {r["silence_id"] for r in logged} == {silence.silence_id} and len(logged) == 3
    assert "data fix in progress" in logged[0]["detail"]
    clock.advance(days=1)
    cycle(wh, rules, sink, clock, "run-2")  # still silenced: logged once, not per run
    assert query(wh, "select count(*) n from alerting.alert_log where outcome = 'silenced'")[0]["n"] == 3

    clock.advance(days=1, minutes=1)  # expired: what still holds goes out now
    released = cycle(wh, rules, sink, clock, "run-3")
    assert (released.dispatch.silenced, released.dispatch.new) == (0, 3)
    assert {n[2] for n in sink.notes(3)} == {"wait_time", "m_wait_q1"}


def test_expiring_a_silence_by_hand_and_a_resolution_under_silence(wh, rules, sink, clock):
    cycle(wh, rules, sink, clock, "run-1")
    with wh() as con:
        silence = add_silence(con, "rule", "source_overdue", clock() + timedelta(days=30), "known outage", clock())
        con.execute("update marts.fct_source_freshness set is_overdue = false")
    clock.advance(days=1)
    quiet = cycle(wh, rules, sink, clock, "run-2")
    assert (quiet.dispatch.resolved, quiet.dispatch.silenced, len(sink.got)) == (0, 2, 5)
    with wh() as con:
        expire_silence(con, silence.silence_id, clock())
    clock.advance(minutes=1)
    after = cycle(wh, rules, sink, clock, "run-3")
    assert after.dispatch.resolved == 2
    assert {(n[0], n[2]) for n in sink.notes(5)} == {("resolved", "finance_xlsx"), ("resolved", "transport_sql")}


def test_an_event_is_told_once_and_never_resolves(wh, rules, sink, clock):
    from alerts.conditions import pipeline_failure_alert

    failure = pipeline_failure_alert(rules, job_name="kpiwatch_all", run_id="abcdef12-run",
                                     failed_steps=["kpiwatch_dbt_models"], error="dbt build failed")
    assert failure.channel == "#data-engineering" and failure.severity == "critical"
    for _ in range(2):
        run_alerts(wh, rules, Transport(sink), run_id="sensor", clock=clock, alerts=[failure], resolve_kinds=())
    assert sink.notes() == [("firing", "pipeline_run_failed", "abcdef12-run", "#data-engineering")]
    # A regular run does not "resolve" it, and it is not listed as firing.
    cycle(wh, rules, sink, clock, "run-1")
    assert ("resolved", "pipeline_run_failed", "abcdef12-run", "#data-engineering") not in sink.notes()
    assert state_of(wh, failure.fingerprint)["state"] == "resolved"


def test_dispatch_rejects_duplicate_fingerprints(wh, rules):
    with wh() as con:
        alerts = evaluate(con, rules, as_of=AS_OF)
        with pytest.raises(ValueError, match="share fingerprint"):
            dispatch(con, alerts + alerts[:1], rules, run_id="r", now=T0)


def test_a_message_slack_rejects_is_given_up_and_reported(wh, rules, sink, clock):
    sink.fail_with = DeliveryError("slack API error: invalid_blocks (HTTP 200)", "message", "invalid_blocks")
    run = cycle(wh, rules, sink, clock, "run-1")
    assert (run.delivery.failed, run.delivery.sent) == (5, 0)
    assert {i.action for i in run.delivery.issues} == {"given up"}
    assert {r["outcome"] for r in query(wh, "select outcome from alerting.alert_log")} == {"failed"}
    sink.fail_with = None
    assert deliver(wh, Transport(sink), run_id="r2", fallback_channel="#x", clock=clock).attempted == 0


def test_a_row_another_live_process_is_sending_is_left_alone(wh, rules, sink, clock):
    import os
    import socket

    from alerts.delivery import claim_is_stale

    host = socket.gethostname()
    assert not claim_is_stale(f"{host}:{os.getppid()}", T0, T0)  # alive (the test runner's parent)
    assert claim_is_stale(f"{host}:999999999", T0, T0)  # no such process: it died mid-send
    assert not claim_is_stale("other-host:12", T0, T0 + timedelta(minutes=5))  # another host: a lease ...
    assert claim_is_stale("other-host:12", T0, T0 + timedelta(minutes=11))  # ... of 10 minutes

    with wh() as con:
        dispatch(con, evaluate(con, rules, as_of=AS_OF), rules, run_id="run-1", now=T0)
        con.execute("update alerting.outbox set status = 'sending', attempts = 1, claimed_by = ?, attempted_at = ? "
                    "where channel = 'U0ANN'", [f"{host}:{os.getppid()}", T0])
    run = deliver(wh, Transport(sink), run_id="run-1", fallback_channel="#x", clock=clock)
    assert (run.in_flight, run.sent) == (1, 4)
    assert "U0ANN" not in [o.channel for o in sink.got]
