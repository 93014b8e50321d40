"""evaluate() against a small DuckDB warehouse, and dispatch()'s state machine."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import duckdb
import pytest

from alerts.engine import AlertsError, dispatch, evaluate
from alerts.model import Alert, fingerprint, labels_hash
from alerts.rules import load_rules
from alerts.sinks import ConsoleSink, JsonlSink, SendResult, SinkError
from tests.unit.test_alerts_warehouse import AS_OF, EXPECTED_ALERTS, build_warehouse

T0 = datetime(2026, 4, 20, 6, 0)


@pytest.fixture
def con(tmp_path):
    con = build_warehouse(duckdb.connect(str(tmp_path / "warehouse.duckdb")))
    yield con
    con.close()


@pytest.fixture
def rules():
    return load_rules()


class RecordingSink:
    """A delivering sink that records what it got, and can be told to fail."""

    name = "recording"
    delivery = True

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.got = []

    def send(self, notification):
        if self.fail:
            raise SinkError("boom")
        self.got.append(notification)
        return SendResult(channel=notification.channel, detail="ok")


def rules_yaml(tmp_path, body: str):
    path = tmp_path / "rules.yml"
    path.write_text(body, encoding="utf-8")
    return load_rules(path)


# ----------------------------------------------------------------------------- fingerprints


def test_fingerprint_is_stable_and_ignores_values():
    # Pinned: changing the scheme would re-notify every open alert after an upgrade.
    assert fingerprint("kpi_off_trajectory", "wait_time") == "29d1f41a15228863"
    red = Alert(rule="r", kind="kpi_status", severity="critical", subject="k", title="t", text="x",
                channel="#c", labels={"status": "red"})
    amber = Alert(rule="r", kind="kpi_status", severity="warning", subject="k", title="other", text="y",
                  channel="#d", labels={"status": "amber"})
    assert red.fingerprint == amber.fingerprint == fingerprint("r", "k")
    assert len(red.fingerprint) == 16
    assert red.labels_hash != amber.labels_hash
    assert labels_hash({"a": 1, "b": 2}) == labels_hash({"b": 2, "a": 1})
    assert fingerprint("r", "k2") != fingerprint("r2", "k")


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_finds_the_scenario(con, rules):
    alerts = evaluate(con, rules, as_of=AS_OF)
    assert [(a.rule, a.subject, a.channel) for a in alerts] == EXPECTED_ALERTS
    assert len({a.fingerprint for a in alerts}) == len(alerts)
    by_key = {(a.rule, a.subject): a for a in alerts}

    red = by_key["kpi_off_trajectory", "wait_time"]
    assert red.severity == "critical" and red.route == "owner"
    assert red.kpi_id == "wait_time" and red.department_id == "health"
    assert red.labels == {"status": "red"}
    assert red.fields["Actual"] == "18.5 days"
    assert red.fields["Expected (trajectory)"] == "14 days"
    assert red.fields["Target"] == "12 days by 2026-12-31"
    assert red.fields["Forecast"] == "16.25 days (will miss)"
    assert red.fields["Data trust"] == "failed_checks"
    assert red.fields["Owner"] == "Ann Owner"
    assert red.as_of == AS_OF

    amber = by_key["kpi_off_trajectory", "bus_punctuality"]
    assert amber.severity == "warning" and amber.route == "department"
    assert amber.title == "Bus punctuality is amber (was green)"

    missed = by_key["milestone_off_track", "m_wait_q1"]
    assert missed.severity == "critical" and missed.title.startswith("Milestone missed")
    assert missed.fields["Due date"] == "2026-03-31"
    at_risk = by_key["milestone_off_track", "m_bus_2026"]
    assert at_risk.severity == "warning" and "forecast" in at_risk.text

    assert by_key["source_overdue", "finance_xlsx"].route == "fallback"
    checks = by_key["critical_check_failed", "health_csv"]
    # Only the latest batch's critical failures: not the old batch, not the warn check.
    assert checks.labels == {"batch_id": "b-health-2", "checks": ["health_csv.not_null.value"]}
    assert "1 critical check failed" in checks.text
    jump = by_key["sudden_jump", "wait_time"]
    assert jump.fields["Change"] == "+2.5 days" and jump.fields["Robust z"] == "+9.3"


def test_evaluate_reads_as_of_from_settings(con, rules):
    assert {a.as_of for a in evaluate(con, rules)} == {AS_OF}


def test_matchers_and_routes(con, tmp_path):
    rules = rules_yaml(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - {name: nhs_only, kind: kpi_status, severity: info, matchers: {tags: [nhs]}}
          - {name: by_dept, kind: kpi_status, severity: info, route: department, matchers: {department: [health]}}
          - {name: by_kpi, kind: milestone, severity: info, matchers: {kpi: bus_punctuality}}
          - {name: sources_by_tag, kind: source_overdue, severity: info, matchers: {tags: buses}}
          - {name: off, kind: anomaly, severity: info, enabled: false}
          - {name: green_too, kind: kpi_status, severity: info, condition: {status_in: [green]}}
        """
    )
    found = [(a.rule, a.subject, a.channel) for a in evaluate(con, rules, as_of=AS_OF)]
    assert found == [
        ("nhs_only", "wait_time", "U0ANN"),
        ("by_dept", "wait_time", "#health-kpis"),
        ("by_kpi", "m_bus_2026", "C0TRANSPORT"),
        ("sources_by_tag", "transport_sql", "C0TRANSPORT"),
        ("green_too", "budget_variance", "#ops"),  # no owner, no department channel
    ]


def test_a_recheck_of_the_latest_batch_wins(con, rules):
    con.execute(
        "insert into quality.check_results (run_id, batch_id, source_id, department_id, suite, check_name, "
        "column_name, severity, success, checked_at) values ('r3', 'b-health-2', 'health_csv', 'health', "
        "'health_csv', 'not_null', 'value', 'critical', true, ?)",
        [datetime(2026, 4, 11)],
    )
    assert "critical_check_failed" not in {a.rule for a in evaluate(con, rules, as_of=AS_OF)}


def test_a_missing_table_is_an_error_not_silence(con, rules):
    # Silence would resolve every open alert of that kind.
    con.execute("drop table marts.fct_kpi_anomalies")
    with pytest.raises(AlertsError, match="marts.fct_kpi_anomalies"):
        evaluate(con, rules, as_of=AS_OF)


# ----------------------------------------------------------------------------- dispatch


def log_rows(con):
    return con.execute(
        "select run_id, rule, event, sink, outcome, detail from alerting.alert_log order by logged_at, rule"
    ).fetchall()


def state_of(con, fp):
    cursor = con.execute("select * from alerting.alert_state where fingerprint = ?", [fp])
    names = [c[0] for c in cursor.description]
    row = cursor.fetchone()
    return dict(zip(names, row)) if row else None


def test_first_run_sends_all_second_run_nothing(con, rules):
    sink = RecordingSink()
    alerts = evaluate(con, rules, as_of=AS_OF)
    first = dispatch(con, alerts, [sink], run_id="run-1", now=T0)
    assert (first.fired, first.new, first.sent, first.failed, first.resolved) == (8, 8, 8, 0, 0)
    assert [n.alert.subject for n in first.sent_alerts] == [subject for _, subject, _ in EXPECTED_ALERTS]
    assert first.per_rule["source_overdue"]["sent"] == 2
    assert len(sink.got) == 8 and {n.event for n in sink.got} == {"firing"}
    assert con.execute("select count(*) from alerting.alert_state where state = 'firing'").fetchone()[0] == 8
    assert len(log_rows(con)) == 8

    second = dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-2", now=T0 + timedelta(days=1))
    assert (second.fired, second.new, second.unchanged, second.sent, second.resolved) == (8, 0, 8, 0, 0)
    assert len(sink.got) == 8 and len(log_rows(con)) == 8
    state = state_of(con, fingerprint("kpi_off_trajectory", "wait_time"))
    assert state["last_seen_at"] == T0 + timedelta(days=1) and state["last_notified_at"] == T0
    assert str(second) == "8 firing (0 new, 0 changed, 8 unchanged), 0 resolved; 0 sent, 0 failed"


def test_a_cleared_condition_sends_exactly_one_resolved_notice(con, rules):
    sink = RecordingSink()
    dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-1", now=T0)
    con.execute("update marts.fct_source_freshness set is_overdue = false, periods_overdue = 0")

    cleared = dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-2", now=T0 + timedelta(days=1))
    assert (cleared.fired, cleared.resolved, cleared.sent) == (6, 2, 2)
    resolved = sink.got[-2:]
    assert [(n.event, n.alert.subject, n.channel) for n in resolved] == [
        ("resolved", "finance_xlsx", "#kpiwatch-alerts"),
        ("resolved", "transport_sql", "C0TRANSPORT"),
    ]
    assert resolved[0].alert.title == "Source overdue: finance_xlsx"
    state = state_of(con, fingerprint("source_overdue", "transport_sql"))
    assert state["state"] == "resolved" and state["resolved_at"] == T0 + timedelta(days=1)

    again = dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-3", now=T0 + timedelta(days=2))
    assert (again.resolved, again.sent) == (0, 0)

    # Overdue again: a new episode under the same fingerprint.
    con.execute("update marts.fct_source_freshness set is_overdue = true where source_id = 'transport_sql'")
    reopened = dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-4", now=T0 + timedelta(days=3))
    assert (reopened.new, reopened.sent) == (1, 1)
    state = state_of(con, fingerprint("source_overdue", "transport_sql"))
    assert state["state"] == "firing" and state["resolved_at"] is None
    assert state["first_fired_at"] == T0 + timedelta(days=3)


def test_a_changed_status_renotifies_under_the_same_fingerprint(con, rules):
    sink = RecordingSink()
    dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-1", now=T0)
    fp = fingerprint("kpi_off_trajectory", "wait_time")
    before = state_of(con, fp)
    con.execute(
        "update marts.fct_kpi_progress set status = 'amber', previous_status = 'red' "
        "where kpi_id = 'wait_time' and is_latest"
    )

    changed = dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-2", now=T0 + timedelta(days=1))
    assert (changed.changed, changed.new, changed.resolved, changed.sent) == (1, 0, 0, 1)
    note = sink.got[-1]
    assert note.event == "firing" and note.alert.fingerprint == fp
    assert note.alert.severity == "warning" and note.alert.title == "Median wait time is amber (was red)"
    after = state_of(con, fp)
    assert after["labels_hash"] != before["labels_hash"] and after["severity"] == "warning"
    assert after["first_fired_at"] == T0  # same episode


def test_a_failed_send_is_logged_and_retried_next_run(con, rules):
    alerts = evaluate(con, rules, as_of=AS_OF)
    failed = dispatch(con, alerts, [RecordingSink(fail=True)], run_id="run-1", now=T0)
    assert (failed.sent, failed.failed) == (0, 8)
    assert failed.failures[0].detail == "boom" and failed.failures[0].sink == "recording"
    assert {row[4] for row in log_rows(con)} == {"failed"}
    assert con.execute("select count(*) from alerting.alert_state").fetchone()[0] == 0

    retried = dispatch(con, alerts, [RecordingSink()], run_id="run-2", now=T0 + timedelta(hours=1))
    assert (retried.new, retried.sent, retried.failed) == (8, 8, 0)


def test_a_failed_resolved_notice_stays_pending(con, rules):
    dispatch(con, evaluate(con, rules, as_of=AS_OF), [RecordingSink()], run_id="run-1", now=T0)
    con.execute("delete from marts.fct_kpi_anomalies")
    fails = dispatch(con, evaluate(con, rules, as_of=AS_OF), [RecordingSink(fail=True)], run_id="run-2", now=T0)
    assert (fails.resolved, fails.failed) == (1, 1)
    assert state_of(con, fingerprint("sudden_jump", "wait_time"))["state"] == "firing"
    sink = RecordingSink()
    ok = dispatch(con, evaluate(con, rules, as_of=AS_OF), [sink], run_id="run-3", now=T0)
    assert (ok.resolved, ok.sent) == (1, 1) and sink.got[0].event == "resolved"


def test_mirror_sinks_do_not_count_as_delivery(con, rules, tmp_path):
    # With Slack configured, console/JSONL mirror it: a Slack failure must stay pending.
    stream = io.StringIO()
    sinks = [ConsoleSink(stream, delivery=False), JsonlSink(tmp_path / "a.jsonl", delivery=False),
             RecordingSink(fail=True)]
    summary = dispatch(con, evaluate(con, rules, as_of=AS_OF), sinks, run_id="run-1", now=T0)
    assert (summary.sent, summary.failed) == (0, 8)
    assert len(stream.getvalue().splitlines()) == 8
    outcomes = con.execute(
        "select sink, outcome, count(*) from alerting.alert_log group by all order by sink"
    ).fetchall()
    assert outcomes == [("console", "sent", 8), ("jsonl", "sent", 8), ("recording", "failed", 8)]
    # Local sinks alone (no Slack) are the delivery.
    summary = dispatch(con, evaluate(con, rules, as_of=AS_OF), [ConsoleSink(stream)], run_id="run-2", now=T0)
    assert summary.sent == 8


def test_log_rows_carry_payload_and_labels(con, rules):
    dispatch(con, evaluate(con, rules, as_of=AS_OF), [RecordingSink()], run_id="run-1", now=T0)
    run_id, fp, event, channel, sink, outcome, detail, payload, logged_at, lh = con.execute(
        "select run_id, fingerprint, event, channel, sink, outcome, detail, payload, logged_at, labels_hash "
        "from alerting.alert_log where rule = 'kpi_off_trajectory' and fingerprint = ?",
        [fingerprint("kpi_off_trajectory", "wait_time")],
    ).fetchone()
    assert (run_id, event, channel, sink, outcome, detail, logged_at) == (
        "run-1", "firing", "U0ANN", "recording", "sent", "ok", T0)
    body = json.loads(payload)
    assert body["fingerprint"] == fp and body["labels"] == {"status": "red"} and body["labels_hash"] == lh


def test_dispatch_rejects_duplicate_fingerprints_and_no_sinks(con, rules):
    alerts = evaluate(con, rules, as_of=AS_OF)
    with pytest.raises(ValueError, match="share fingerprint"):
        dispatch(con, alerts + alerts[:1], [RecordingSink()], run_id="r", now=T0)
    with pytest.raises(ValueError, match="at least one sink"):
        dispatch(con, alerts, [], run_id="r", now=T0)
