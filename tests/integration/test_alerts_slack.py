"""End to end through the real slack_sdk WebClient against a local fake Slack server."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import duckdb
import pytest
from slack_sdk import WebClient

from alerts.engine import dispatch, evaluate
from alerts.formatting import slack_message
from alerts.model import Notification
from alerts.rules import load_rules
from alerts.sinks import sinks_from_env
from tests.support.slack_server import FakeSlack
from tests.unit.test_alerts_warehouse import AS_OF, EXPECTED_ALERTS, build_warehouse

GOOD_TOKEN = "xoxb-good-test-token-4242"
BAD_TOKEN = "xoxb-wrong-secret-9999"
T0 = datetime(2026, 4, 20, 6, 0)


@pytest.fixture
def slack():
    with FakeSlack(tokens={GOOD_TOKEN}) as server:
        yield server


@pytest.fixture
def con(tmp_path):
    con = build_warehouse(duckdb.connect(str(tmp_path / "warehouse.duckdb")))
    yield con
    con.close()


@pytest.fixture
def env(monkeypatch, slack):
    def use(token: str):
        monkeypatch.setenv("SLACK_BOT_TOKEN", token)
        monkeypatch.setenv("KPIWATCH_SLACK_BASE_URL", slack.base_url)

    return use


def run(con, tmp_path, run_id, now, alerts=None, stream=None):
    found = alerts if alerts is not None else evaluate(con, load_rules(), as_of=AS_OF)
    sinks = sinks_from_env(tmp_path / "alerts.jsonl", stream=stream or io.StringIO())
    return dispatch(con, found, sinks, run_id=run_id, now=now)


def test_fake_server_speaks_the_web_api(slack):
    client = WebClient(token=GOOD_TOKEN, base_url=slack.base_url)
    assert client.auth_test()["user_id"] == "U0KPIBOT"
    # Form-encoded body, blocks as a JSON string: parsed like JSON bodies.
    response = client.api_call(
        "chat.postMessage",
        data={"channel": "#x", "text": "hi", "blocks": json.dumps([{"type": "divider"}])},
    )
    assert response["ok"] and response["channel"] == "#x"
    request = slack.calls("chat.postMessage")[0]
    assert request.headers["authorization"] == f"Bearer {GOOD_TOKEN}"
    assert request.body["blocks"] == [{"type": "divider"}]


def test_alerts_are_delivered_and_a_second_run_sends_nothing(con, tmp_path, slack, env):
    env(GOOD_TOKEN)
    first = run(con, tmp_path, "run-1", T0)
    assert (first.sent, first.failed) == (len(EXPECTED_ALERTS), 0)

    requests = slack.calls("chat.postMessage")
    assert len(requests) == len(EXPECTED_ALERTS) == len(slack.messages)
    assert [m["channel"] for m in slack.messages] == [channel for _, _, channel in EXPECTED_ALERTS]
    for notification, request in zip(first.sent_alerts, requests):
        expected = slack_message(notification)
        assert request.headers["content-type"].startswith("application/json")
        assert request.headers["authorization"] == f"Bearer {GOOD_TOKEN}"
        assert request.body["channel"] == expected["channel"]
        assert request.body["text"] == expected["text"]
        assert request.body["blocks"] == expected["blocks"]
        assert request.body["blocks"][0]["type"] == "header"

    slack_log = con.execute(
        "select outcome, detail from alerting.alert_log where sink = 'slack' order by detail"
    ).fetchall()
    assert slack_log[0] == ("sent", "ts=1700000000.000001") and {o for o, _ in slack_log} == {"sent"}
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == len(EXPECTED_ALERTS)

    second = run(con, tmp_path, "run-2", T0 + timedelta(days=1))
    assert (second.sent, second.unchanged) == (0, len(EXPECTED_ALERTS))
    assert len(slack.calls("chat.postMessage")) == len(EXPECTED_ALERTS)  # nothing new reached Slack


def test_a_429_with_retry_after_is_retried_and_delivered_once(con, tmp_path, slack, env):
    env(GOOD_TOKEN)
    one = evaluate(con, load_rules(), as_of=AS_OF)[:1]
    slack.rate_limit_next(1, retry_after=1)
    summary = run(con, tmp_path, "run-1", T0, alerts=one)
    assert (summary.sent, summary.failed) == (1, 0)
    first, second = slack.calls("chat.postMessage")
    assert second.at - first.at >= 1.0  # Retry-After honoured
    assert len(slack.messages) == 1
    assert con.execute("select count(*) from alerting.alert_log where sink = 'slack'").fetchone()[0] == 1


def test_invalid_auth_is_failed_and_the_token_appears_nowhere(con, tmp_path, slack, env):
    env(BAD_TOKEN)
    stream = io.StringIO()
    summary = run(con, tmp_path, "run-1", T0, stream=stream)
    assert (summary.sent, summary.failed) == (0, len(EXPECTED_ALERTS))
    assert slack.messages == []
    assert {f.detail for f in summary.failures} == {"slack API error: invalid_auth (HTTP 200)"}
    rows = con.execute("select * from alerting.alert_log").fetchall()
    assert {(row[5], row[6]) for row in rows} == {("console", "sent"), ("jsonl", "sent"), ("slack", "failed")}
    everything = " ".join(
        [repr(rows), repr(con.execute("select * from alerting.alert_state").fetchall()),
         json.dumps(summary.to_dict(), default=str), str(summary), stream.getvalue(),
         (tmp_path / "alerts.jsonl").read_text()]
    )
    assert BAD_TOKEN not in everything and "xoxb-wrong" not in everything
    assert con.execute("select count(*) from alerting.alert_state").fetchone()[0] == 0  # still pending

    env(GOOD_TOKEN)  # fixed: the next run delivers what was pending
    retry = run(con, tmp_path, "run-2", T0 + timedelta(hours=1))
    assert (retry.sent, retry.failed) == (len(EXPECTED_ALERTS), 0)
    assert len(slack.messages) == len(EXPECTED_ALERTS)


def test_an_unknown_channel_fails_only_its_alert(con, tmp_path, slack, env):
    env(GOOD_TOKEN)
    slack.unknown_channels.add("U0MIA")
    summary = run(con, tmp_path, "run-1", T0)
    assert (summary.sent, summary.failed) == (len(EXPECTED_ALERTS) - 1, 1)
    failure = summary.failures[0]
    assert (failure.rule, failure.sink, failure.detail) == (
        "milestone_off_track", "slack", "slack API error: channel_not_found (HTTP 200)")

    slack.unknown_channels.clear()
    retry = run(con, tmp_path, "run-2", T0 + timedelta(hours=1))
    assert (retry.sent, retry.failed, retry.new) == (1, 0, 1)
    assert isinstance(retry.sent_alerts[0], Notification) and retry.sent_alerts[0].channel == "U0MIA"
