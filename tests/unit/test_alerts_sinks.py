"""Console and JSONL sinks, the environment switch, and the Slack sink's secrecy."""

from __future__ import annotations

import ast
import io
import json
import socket
from datetime import datetime
from pathlib import Path

import pytest

import alerts
from alerts.model import Alert, Notification
from alerts.sinks import ConsoleSink, JsonlSink, SinkError, SlackSink, sinks_from_env

TOKEN = "xoxb-unit-secret-123"
AT = datetime(2026, 4, 20, 6, 0)


def note(event="firing") -> Notification:
    alert = Alert(rule="sudden_jump", kind="anomaly", severity="warning", subject="wait_time",
                  title="Sudden jump: [Median] wait", text="changed by +2.5 days", channel="U0ANN")
    return Notification(event, alert, "run-1", AT)


def test_console_sink_writes_one_plain_line_per_notification():
    stream = io.StringIO()
    sink = ConsoleSink(stream)
    sink.send(note())
    result = sink.send(note("resolved"))
    assert result.channel == "U0ANN"
    lines = stream.getvalue().splitlines()
    assert lines == [
        "warning  sudden_jump -> U0ANN: Sudden jump: [Median] wait | changed by +2.5 days",
        "resolved sudden_jump -> U0ANN: Sudden jump: [Median] wait | changed by +2.5 days",
    ]


def test_console_sink_with_rich_keeps_brackets(capsys):
    ConsoleSink().send(note())
    assert "Sudden jump: [Median] wait" in capsys.readouterr().out


def test_jsonl_sink_appends_one_object_per_notification(tmp_path):
    path = tmp_path / "deep" / "alerts.jsonl"
    sink = JsonlSink(path)
    sink.send(note())
    sink.send(note("resolved"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["event"] for row in rows] == ["firing", "resolved"]
    assert rows[0]["fingerprint"] == note().alert.fingerprint and rows[0]["at"] == "2026-04-20T06:00:00"


def test_jsonl_sink_failure_is_a_sink_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SinkError, match="cannot append"):
        JsonlSink(tmp_path / "file" / "alerts.jsonl").send(note())


def test_sinks_from_env_without_token(monkeypatch, tmp_path):
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    sinks = sinks_from_env(tmp_path / "a.jsonl")
    assert [type(s) for s in sinks] == [ConsoleSink, JsonlSink]
    assert all(s.delivery for s in sinks)


def test_sinks_from_env_with_token(monkeypatch, tmp_path):
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("KPIWATCH_SLACK_BASE_URL", "http://127.0.0.1:9/api")
    sinks = sinks_from_env(tmp_path / "a.jsonl", stream=io.StringIO())
    assert [type(s) for s in sinks] == [ConsoleSink, JsonlSink, SlackSink]
    assert [s.delivery for s in sinks] == [False, False, True]
    slack = sinks[2]
    assert slack.base_url == "http://127.0.0.1:9/api/"  # trailing slash added
    assert TOKEN not in repr(sinks) and TOKEN not in str(vars(slack).get("base_url"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_slack_connection_error_is_a_sink_error_without_the_token():
    sink = SlackSink(TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/", max_retries=0, timeout=2)
    with pytest.raises(SinkError) as caught:
        sink.send(note())
    assert "slack request failed" in str(caught.value)
    assert TOKEN not in str(caught.value) and caught.value.__cause__ is None


def test_slack_sink_needs_a_token():
    with pytest.raises(ValueError):
        SlackSink("")


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
            assert not any(name.split(".")[0].startswith("dagster") for name in names), path
