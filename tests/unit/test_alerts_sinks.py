"""The local sink (console + JSONL), the environment switch, and the Slack sink's secrecy."""

from __future__ import annotations

import ast
import io
import json
import socket
from datetime import datetime
from pathlib import Path

import pytest

import alerts
from alerts.formatting import slack_message
from alerts.model import Alert, Notification
from alerts.sinks import (
    DeliveryError,
    LocalSink,
    Outgoing,
    SlackSink,
    notification_record,
    redact,
    transport_from_env,
)

TOKEN = "xoxb-unit-secret-123"
AT = datetime(2026, 4, 20, 6, 0)


def out(event="firing", outbox_id="m-1") -> Outgoing:
    alert = Alert(rule="sudden_jump", kind="anomaly", severity="warning", subject="wait_time",
                  title="Sudden jump: [Median] wait", text="changed by +2.5 days")
    notification = Notification(event, alert, "run-1", AT, channel="U0ANN", seq=1)
    return Outgoing(outbox_id, "U0ANN", slack_message(notification), (notification_record(notification),))


def test_local_sink_prints_appends_and_finds_what_it_delivered(tmp_path):
    stream = io.StringIO()
    path = tmp_path / "deep" / "alerts.jsonl"
    sink = LocalSink(path, stream)
    assert sink.find(out()) is None
    delivered = sink.post(out())
    assert delivered.channel == "U0ANN"
    assert stream.getvalue() == "warning   sudden_jump -> U0ANN: Sudden jump: [Median] wait | changed by +2.5 days\n"
    [row] = [json.loads(line) for line in path.read_text().splitlines()]
    assert (row["outbox_id"], row["delivery"], row["event"], row["at"]) == ("m-1", "local", "firing", "2026-04-20T06:00:00")
    assert row["fingerprint"] == out().notifications[0]["fingerprint"]
    assert sink.find(out()).recovered  # the outbox's "was it delivered?" check
    assert sink.find(out(outbox_id="m-2")) is None


def test_local_mirror_is_written_once_per_mode_and_is_not_a_delivery(tmp_path):
    sink = LocalSink(tmp_path / "a.jsonl", io.StringIO())
    sink.mirror(out())
    sink.mirror(out())
    sink.mirror(out(), "held")
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["delivery"] for r in rows] == ["mirror", "held"]
    assert sink.find(out()) is None  # a mirror line is not a local delivery


def test_console_with_rich_keeps_brackets(tmp_path, capsys):
    LocalSink(tmp_path / "a.jsonl").post(out())
    assert "Sudden jump: [Median] wait" in capsys.readouterr().out


def test_local_sink_failure_is_a_delivery_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DeliveryError, match="cannot append") as caught:
        LocalSink(tmp_path / "file" / "alerts.jsonl", io.StringIO()).post(out())
    assert caught.value.kind == "transient"


def test_transport_from_env(tmp_path):
    local = transport_from_env(tmp_path / "a.jsonl", environ={})
    assert isinstance(local.sink, LocalSink) and local.mirror is None and local.name == "local"
    slack = transport_from_env(tmp_path / "a.jsonl", environ={
        "SLACK_BOT_TOKEN": TOKEN, "KPIWATCH_SLACK_BASE_URL": "http://127.0.0.1:9/api", "KPIWATCH_SLACK_TIMEOUT": "3"})
    assert isinstance(slack.sink, SlackSink) and isinstance(slack.mirror, LocalSink)
    assert slack.sink.base_url == "http://127.0.0.1:9/api/"  # trailing slash added
    assert slack.sink.client.timeout == 3
    assert TOKEN not in repr(slack) and TOKEN not in repr(vars(slack.sink).get("base_url"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_slack_connection_error_is_transient_and_secret_free():
    sink = SlackSink(TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/", max_retries=0, timeout=2)
    with pytest.raises(DeliveryError) as caught:
        sink.post(out())
    assert "slack request failed" in str(caught.value) and caught.value.kind == "transient"
    assert not caught.value.ambiguous  # connection refused: nothing reached Slack
    assert TOKEN not in str(caught.value) and caught.value.__cause__ is None


def test_slack_sink_needs_a_token():
    with pytest.raises(ValueError):
        SlackSink("")


def test_redact_tokens_and_url_passwords():
    text = f"failed with {TOKEN} for postgresql://kpi:hunter2@db:5432/kpi and xoxp-9-abc"
    assert redact(text) == "failed with xox?-*** for postgresql://kpi:***@db:5432/kpi and xox?-***"
    assert redact("secret-value here", "secret-value") == "xox?-*** here"


def test_alerts_package_does_not_import_dagster():
    # The alerts package must stay usable (and fast to import) without Dagster.
    for path in Path(alerts.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name.split(".")[0].startswith(("dagster", "pipelines")) for name in names), path
