"""The alert lifecycle and Slack's failure modes, end to end through slack-sdk's real WebClient
against a local server speaking the Slack Web API (tests/support/slack_server.py).

Time is an injectable clock; Retry-After is 1 s and the client timeout 1 s to keep it fast.
Each fault test asserts delivery counts: notifications expected, delivered, duplicated.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from datetime import datetime, timedelta

import duckdb
import pytest
from slack_sdk import WebClient

from alerts.delivery import file_warehouse
from alerts.engine import run_alerts
from alerts.rules import load_rules
from alerts.sinks import LocalSink, SlackSink, Transport
from alerts.store import ack, add_silence
from tests.support.slack_server import FakeSlack, conversation_id
from tests.unit.test_alerts_engine import Clock
from tests.unit.test_alerts_warehouse import AS_OF, EXPECTED_ALERTS, build_warehouse

GOOD_TOKEN = "xoxb-good-test-token-4242"
BAD_TOKEN = "xoxb-wrong-secret-9999"
T0 = datetime(2026, 4, 20, 6, 0)
RECIPIENTS = sorted({channel for _, _, channel in EXPECTED_ALERTS})  # 5 channels for 7 alerts


@pytest.fixture
def slack():
    with FakeSlack(tokens={GOOD_TOKEN}) as server:
        yield server


@pytest.fixture
def wh(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    build_warehouse(duckdb.connect(str(path))).close()
    return file_warehouse(path)


@pytest.fixture
def clock():
    return Clock(T0)


class Env:
    def __init__(self, wh, slack, clock, tmp_path):
        self.wh, self.slack, self.clock = wh, slack, clock
        self.rules = load_rules()
        self.stream = io.StringIO()
        self.jsonl = tmp_path / "alerts.jsonl"

    def transport(self, token=GOOD_TOKEN, max_retries=3):
        sink = SlackSink(token, self.slack.base_url, timeout=1, max_retries=max_retries, backoff=0.05)
        return Transport(sink, mirror=LocalSink(self.jsonl, self.stream))

    def run(self, run_id, token=GOOD_TOKEN, max_retries=3):
        return run_alerts(self.wh, self.rules, self.transport(token, max_retries), run_id=run_id,
                          clock=self.clock, as_of=AS_OF)

    def query(self, sql, params=()):
        with self.wh() as con:
            cursor = con.execute(sql, list(params))
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def execute(self, sql, params=()):
        with self.wh() as con:
            con.execute(sql, list(params))

    def posted(self):
        """(outbox key, channel) of every message the server stored, in order."""
        return [(key, m["channel"]) for key, m in zip(self.slack.keys(), self.slack.messages)]

    def counts(self) -> dict[str, int]:
        """Notifications decided (outbox) vs delivered (stored by the server, by their key)."""
        decided = Counter()
        carried: dict[str, list] = {}
        for row in self.query("select outbox_id, notifications, original_channel from alerting.outbox"):
            notes = [(n["fingerprint"], n["event"], n["seq"]) for n in json.loads(row["notifications"])]
            carried[row["outbox_id"]] = notes
            if row["original_channel"] is None:
                decided.update(notes)
        seen = Counter(note for key in self.slack.keys() for note in carried.get(key, []))
        return {"expected": len(decided), "delivered": len(set(seen) & set(decided)),
                "duplicated": sum(n - 1 for n in seen.values() if n > 1),
                "messages": len(self.slack.messages), "distinct_messages": len(set(self.slack.keys()))}


@pytest.fixture
def env(wh, slack, clock, tmp_path):
    return Env(wh, slack, clock, tmp_path)


def report(name: str, counts: dict[str, int]) -> None:
    print(f"\n[delivery counts] {name}: {json.dumps(counts, sort_keys=True)}")


# ----------------------------------------------------------------------------- the server


def test_fake_server_speaks_the_web_api(slack):
    client = WebClient(token=GOOD_TOKEN, base_url=slack.base_url)
    assert client.auth_test()["user_id"] == "U0KPIBOT"
    response = client.api_call(
        "chat.postMessage",
        data={"channel": "#x", "text": "hi", "blocks": json.dumps([{"type": "divider"}])},
    )
    assert response["ok"] and response["channel"] == conversation_id("#x")
    client.chat_postMessage(channel="U0ANN", text="dm", metadata={"event_type": "t", "event_payload": {"key": "k1"}})
    assert client.conversations_open(users="U0ANN")["channel"]["id"] == "D0ANN"
    history = client.conversations_history(channel="D0ANN", include_all_metadata=True)
    assert [m["metadata"]["event_payload"]["key"] for m in history["messages"]] == ["k1"]
    assert "metadata" not in client.conversations_history(channel="D0ANN")["messages"][0]
    assert [c["name"] for c in client.conversations_list()["channels"]] == ["x"]
    request = slack.calls("chat.postMessage")[0]
    assert request.headers["authorization"] == f"Bearer {GOOD_TOKEN}"
    assert request.body["blocks"] == [{"type": "divider"}]


# ----------------------------------------------------------------------------- lifecycle


def test_grouping_one_message_per_recipient_and_a_rerun_sends_nothing(env, slack):
    first = env.run("run-1")
    assert (first.dispatch.new, first.delivery.sent, first.delivery.failed) == (7, 5, 0)
    assert sorted(m["channel"] for m in slack.messages) == RECIPIENTS  # one message each
    ann = slack.in_channel("U0ANN")[0]
    assert ann["text"].startswith("kpiwatch: 2 alerts (1 critical, 1 warning) — [CRITICAL] Median wait time is red; "
                                  "[WARNING] Sudden jump: Median wait time")
    assert ann["blocks"][0]["text"]["text"] == ":bell: 2 kpiwatch alerts: 1 critical, 1 warning"
    outbox = {r["outbox_id"]: r for r in env.query("select * from alerting.outbox")}
    for request in slack.calls("chat.postMessage"):
        assert request.headers["content-type"].startswith("application/json")
        assert request.headers["authorization"] == f"Bearer {GOOD_TOKEN}"
        key = request.body["metadata"]["event_payload"]["key"]
        stored = json.loads(outbox[key]["payload"])
        assert (request.body["blocks"], request.body["text"]) == (stored["blocks"], stored["text"])
        assert outbox[key]["status"] == "sent" and outbox[key]["slack_ts"]
    assert {r["outcome"] for r in env.query("select outcome from alerting.alert_log")} == {"sent"}
    assert len(env.query("select * from alerting.alert_log")) == 7  # one row per notification
    assert len(env.jsonl.read_text().splitlines()) == 7  # the local mirror

    env.clock.advance(days=1)
    second = env.run("run-2")
    assert (second.dispatch.unchanged, second.dispatch.notifications) == (7, 0)
    assert len(slack.messages) == 5
    report("grouping", env.counts())
    assert env.counts() == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_repeat_interval_reminds_once_a_week(env, slack):
    env.run("run-1")
    env.clock.advance(days=6)
    early = env.run("day-6")
    assert (early.dispatch.repeated, early.dispatch.escalated) == (0, 1)  # the missed milestone escalates
    env.clock.advance(days=1)
    week = env.run("day-7")
    assert week.dispatch.repeated == 7 and week.delivery.sent == 5  # grouped again: one per recipient
    reminders = slack.messages[6:]
    assert sorted(m["channel"] for m in reminders) == RECIPIENTS
    assert all("Still firing" in m["text"] for m in reminders)
    env.clock.advance(days=1)
    assert env.run("day-8").dispatch.notifications == 0
    assert len(slack.messages) == 11


def test_a_cleared_condition_sends_one_resolved_notice(env, slack):
    env.run("run-1")
    env.execute("update marts.fct_kpi_progress set status = 'green', previous_status = 'red' "
                "where kpi_id = 'wait_time' and is_latest")
    env.clock.advance(days=1)
    cleared = env.run("run-2")
    assert (cleared.dispatch.resolved, cleared.delivery.sent) == (1, 1)
    resolved = slack.messages[-1]
    assert resolved["channel"] == "U0ANN"  # where the alert went
    assert resolved["text"].startswith("[RESOLVED] Resolved: Median wait time is red: Now green")
    env.clock.advance(days=1)
    assert env.run("run-3").dispatch.notifications == 0
    assert len(slack.messages) == 6


def test_silence_suppresses_until_it_expires(env, slack):
    with env.wh() as con:
        silence = add_silence(con, "department", "health", T0 + timedelta(days=2), "new data system", T0)
    first = env.run("run-1")
    assert first.dispatch.silenced == 4
    assert sorted(m["channel"] for m in slack.messages) == ["#kpiwatch-alerts", "C0TRANSPORT"]
    logged = env.query("select rule, silence_id, detail from alerting.alert_log where outcome = 'silenced'")
    assert len(logged) == 4 and {r["silence_id"] for r in logged} == {silence.silence_id}
    assert all("department health" in r["detail"] and "new data system" in r["detail"] for r in logged)

    env.clock.advance(days=1)
    assert env.run("run-2").dispatch.notifications == 0
    env.clock.advance(days=1)  # the silence ends: what still holds goes out, grouped
    released = env.run("run-3")
    assert (released.dispatch.new, released.delivery.sent) == (4, 3)
    assert sorted(m["channel"] for m in slack.messages[2:]) == ["#health-kpis", "U0ANN", "U0MIA"]


def test_escalation_after_three_days_unless_acknowledged(env, slack):
    env.run("run-1")
    env.clock.advance(days=3)
    escalated = env.run("day-3")
    assert escalated.dispatch.escalated == 1
    head = slack.messages[-1]
    assert head["channel"] == "U0HAL"  # the health department head
    assert head["text"].startswith("[ESCALATED] Escalated: Milestone missed: Waits under 15 days by March")
    assert "Acknowledge: `kpiwatch ack" in json.dumps(head["blocks"])

    # Acknowledged in time: no escalation for another department's missed milestone.
    env.execute("update marts.fct_milestones set state = 'missed', days_to_due = -1 where milestone_id = 'm_bus_2026'")
    env.run("day-3b")
    fp = env.query("select fingerprint from alerting.alert_state where subject = 'm_bus_2026'")[0]["fingerprint"]
    with env.wh() as con:
        ack(con, fp, "Sam", "operator recovery plan", env.clock())
    env.clock.advance(days=4)
    later = env.run("day-7")
    assert later.dispatch.escalated == 0
    assert all(m["channel"] != "C0TRANSPORT" or "Escalated" not in m["text"] for m in slack.messages)


# ----------------------------------------------------------------------------- faults


def test_429_honours_retry_after_and_delivers_once(env, slack):
    slack.rate_limit_next(1, retry_after=1)
    run = env.run("run-1")
    assert (run.delivery.sent, run.delivery.pending) == (5, 0)
    first, second = slack.calls("chat.postMessage")[:2]
    assert second.body["metadata"] == first.body["metadata"]
    assert second.at - first.at >= 1.0  # Retry-After honoured
    counts = env.counts()
    report("429 Retry-After", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_500s_are_retried_with_backoff_and_checked_first(env, slack):
    slack.fail_next(2, status=500)
    run = env.run("run-1")
    assert (run.delivery.sent, run.delivery.pending) == (5, 0)
    posts = slack.calls("chat.postMessage")
    assert len(posts) == 7  # the first message took three attempts
    assert len({json.dumps(p.body["metadata"]) for p in posts[:3]}) == 1
    counts = env.counts()
    report("HTTP 500 x2", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_5xx_beyond_the_retries_stays_pending_for_the_next_run(env, slack):
    slack.fail_next(3, status=503)
    run = env.run("run-1", max_retries=2)
    assert (run.delivery.sent, run.delivery.pending) == (4, 1)
    [issue] = run.delivery.issues
    assert issue.action == "will retry next run" and "HTTP 503" in issue.detail
    env.clock.advance(hours=1)
    retry = env.run("run-2")
    assert (retry.dispatch.notifications, retry.delivery.sent) == (0, 1)
    counts = env.counts()
    report("HTTP 503 beyond retries", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_a_timeout_after_slack_accepted_is_not_posted_twice(env, slack):
    slack.slow_next(1, seconds=2, deliver=True)  # accepted, but the answer comes after the 1 s timeout
    started = time.monotonic()
    run = env.run("run-1")
    assert (run.delivery.sent, run.delivery.recovered, run.delivery.possible_duplicates) == (4, 1, 0)
    assert len(slack.calls("chat.postMessage")) == 5  # no second post: the history check found it
    assert slack.calls("conversations.history")
    assert time.monotonic() - started < 10
    counts = env.counts()
    report("timeout, message accepted", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_a_timeout_before_slack_accepted_is_retried(env, slack):
    slack.slow_next(1, seconds=2, deliver=False)
    run = env.run("run-1")
    assert (run.delivery.sent, run.delivery.recovered) == (5, 0)
    assert len(slack.calls("chat.postMessage")) == 6  # the retry
    counts = env.counts()
    report("timeout, message not accepted", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_when_the_history_cannot_be_read_a_retry_is_flagged_as_a_possible_duplicate(env, slack):
    # The honest limit: without the history scope, a timed-out post cannot be checked.
    slack.history_error = "missing_scope"
    slack.slow_next(1, seconds=2, deliver=True)
    run = env.run("run-1")
    assert run.delivery.possible_duplicates == 1
    [row] = env.query("select * from alerting.outbox where possible_duplicate")
    assert row["status"] == "sent"
    assert env.query("select count(*) n from alerting.alert_log where detail like '%possible duplicate%'")[0]["n"] >= 1
    counts = env.counts()
    report("timeout, history unreadable", counts)
    assert counts["messages"] == 6 and counts["distinct_messages"] == 5 and counts["duplicated"] >= 1


def test_channel_not_found_goes_to_the_fallback_and_is_reported(env, slack):
    slack.unknown_channels.add("U0MIA")
    run = env.run("run-1")
    assert (run.delivery.sent, run.delivery.rerouted, run.delivery.failed) == (5, 1, 0)
    [issue] = run.delivery.issues
    assert (issue.channel, issue.code, issue.action) == ("U0MIA", "channel_not_found", "rerouted to #kpiwatch-alerts")
    fallback = [m for m in slack.messages if m["channel"] == "#kpiwatch-alerts"]
    assert len(fallback) == 2
    moved = next(m for m in fallback if "undeliverable" in m["text"])
    assert moved["text"].startswith("[undeliverable to U0MIA: channel_not_found] [CRITICAL] Milestone missed")
    log = env.query("select outcome, channel, detail from alerting.alert_log where rule = 'milestone_off_track'")
    assert sorted((r["outcome"], r["channel"]) for r in log) == [("rerouted", "U0MIA"), ("sent", "#kpiwatch-alerts")]
    assert "channel_not_found; rerouted to #kpiwatch-alerts" in {r["detail"] for r in log}
    counts = env.counts()
    report("channel_not_found -> fallback", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_a_missing_fallback_channel_fails_and_is_reported(env, slack):
    slack.unknown_channels.update({"U0MIA", "#kpiwatch-alerts"})
    run = env.run("run-1")
    # U0MIA's message is rerouted, but the fallback is missing too: both it and the fallback's own
    # message are given up, and reported.
    assert (run.delivery.sent, run.delivery.rerouted, run.delivery.failed) == (3, 1, 2)
    assert {i.action for i in run.delivery.issues} == {"rerouted to #kpiwatch-alerts", "given up"}


def test_invalid_auth_is_reported_held_and_the_token_appears_nowhere(env, slack, caplog):
    caplog.set_level(logging.DEBUG)
    run = env.run("run-1", token=BAD_TOKEN)
    assert slack.messages == []
    assert (run.delivery.auth_error, run.delivery.held, run.delivery.sent) == ("invalid_auth", 5, 0)
    assert "Slack rejected the token (invalid_auth)" in str(run.delivery)
    assert len(slack.calls("chat.postMessage")) == 1  # stops at the first rejection
    held = env.query("select distinct outcome, detail from alerting.alert_log")
    assert held == [{"outcome": "held", "detail": "invalid_auth: Slack rejected the bot token; held for the next run"}]
    mirrored = [json.loads(line) for line in env.jsonl.read_text().splitlines()]
    assert {m["delivery"] for m in mirrored} == {"held"} and len(mirrored) == 7  # visible locally
    everything = " ".join([
        caplog.text, env.stream.getvalue(), env.jsonl.read_text(), str(run), json.dumps(run.delivery.to_dict()),
        json.dumps(run.dispatch.to_dict(), default=str),
        *(json.dumps(env.query(f"select * from alerting.{t}"), default=str)
          for t in ("alert_log", "alert_state", "outbox")),
    ])
    assert BAD_TOKEN not in everything and "wrong-secret" not in everything
    assert GOOD_TOKEN not in everything

    env.clock.advance(hours=1)  # the token is fixed: the held messages go out, once
    fixed = env.run("run-2")
    assert (fixed.dispatch.notifications, fixed.delivery.sent) == (0, 5)
    counts = env.counts()
    report("invalid_auth then fixed", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}


def test_an_unrecorded_post_survives_a_bad_token_run_without_being_doubled(env, slack):
    # The process "dies" after Slack accepted the first message (the outbox still says sending),
    # the next run has a revoked token (nothing can be checked or sent), the one after is fine:
    # the first message must still be found, not posted again.
    class Died(Exception):
        pass

    def die(out, result):
        raise Died()

    with pytest.raises(Died):
        run_alerts(env.wh, env.rules, env.transport(), run_id="run-1", clock=env.clock, as_of=AS_OF, after_send=die)
    assert len(slack.messages) == 1
    env.clock.advance(hours=1)
    held = env.run("run-2", token=BAD_TOKEN)
    assert (held.delivery.held, held.delivery.sent) == (5, 0)
    env.clock.advance(hours=1)
    fixed = env.run("run-3")
    assert (fixed.delivery.recovered, fixed.delivery.sent) == (1, 4)
    counts = env.counts()
    report("unrecorded post, then invalid_auth, then fixed", counts)
    assert counts == {"expected": 7, "delivered": 7, "duplicated": 0, "messages": 5, "distinct_messages": 5}
