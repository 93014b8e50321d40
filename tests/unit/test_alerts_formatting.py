"""The Block Kit formatter: key fields, limits, escaping, and golden payloads.

Regenerate the golden files after an intended change with:
    KPIWATCH_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_alerts_formatting.py
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from alerts.engine import _resolved_alert, evaluate
from alerts.formatting import console_line, fallback_text, slack_message
from alerts.model import Alert, Notification
from alerts.rules import load_rules
from tests.unit.test_alerts_warehouse import AS_OF, build_warehouse

GOLDEN = Path(__file__).parent / "golden"
AT = datetime(2026, 4, 20, 6, 0)


def check_golden(name: str, actual) -> None:
    path = GOLDEN / name
    text = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("KPIWATCH_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with KPIWATCH_REGEN_GOLDEN=1"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), (
        f"{name} differs from the golden file; if intended, regenerate with KPIWATCH_REGEN_GOLDEN=1"
    )


def make_alert(**overrides) -> Alert:
    values = dict(
        rule="kpi_off_trajectory", kind="kpi_status", severity="critical", subject="wait_time",
        title="Median wait time is red", text="2026-03: actual 18.5 days against 14 days expected.",
        channel="U0ANN", route="owner", department_id="health", kpi_id="wait_time",
        fields={"KPI": "Median wait time", "Actual": "18.5 days"}, labels={"status": "red"}, as_of=date(2026, 4, 20),
    )
    values.update(overrides)
    return Alert(**values)


def test_firing_payload_has_header_fields_and_fingerprint():
    alert = make_alert()
    message = slack_message(Notification("firing", alert, "run-1", AT))
    assert message["channel"] == "U0ANN"
    assert message["text"] == "[CRITICAL] Median wait time is red: 2026-03: actual 18.5 days against 14 days expected."
    header, section, context = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": ":red_circle: Median wait time is red",
                                                  "emoji": True}}
    assert section["text"]["text"] == alert.text
    assert section["fields"] == [
        {"type": "mrkdwn", "text": "*KPI*\nMedian wait time"},
        {"type": "mrkdwn", "text": "*Actual*\n18.5 days"},
    ]
    assert context["type"] == "context"
    assert f"fingerprint `{alert.fingerprint}`" in context["elements"][0]["text"]
    assert "as of 2026-04-20" in context["elements"][0]["text"]


def test_resolved_payload():
    message = slack_message(Notification("resolved", make_alert(fields={}), "run-2", AT))
    assert message["text"].startswith("[RESOLVED] Median wait time is red: ")
    assert message["blocks"][0]["text"]["text"].startswith(":white_check_mark: Resolved:")
    assert "fields" not in message["blocks"][1]  # Slack rejects an empty fields list
    assert message["blocks"][2]["elements"][0]["text"].startswith("*resolved*")


def test_escaping_limits_and_determinism():
    alert = make_alert(
        title="x" * 300,
        text="a <b> & c\nnext line",
        fields={f"F{i}": f"<v{i}>" for i in range(13)},
    )
    note = Notification("firing", alert, "run-1", AT)
    message = slack_message(note)
    assert message == slack_message(note)
    header, first, second, _ = message["blocks"]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")
    assert first["text"]["text"] == "a &lt;b&gt; &amp; c\nnext line"
    assert len(first["fields"]) == 10 and len(second["fields"]) == 3  # Slack's 10-field limit
    assert second["fields"][0]["text"] == "*F10*\n&lt;v10&gt;"
    assert "\n" not in fallback_text(note) and "\n" not in console_line(note)


def test_golden_payloads_for_the_scenario(tmp_path):
    con = build_warehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    alerts = evaluate(con, load_rules(), as_of=AS_OF)
    con.close()
    payloads = [slack_message(Notification("firing", alert, "run-1", AT)) for alert in alerts]
    resolved = _resolved_alert(
        {"rule": alerts[0].rule, "kind": alerts[0].kind, "severity": alerts[0].severity,
         "subject": alerts[0].subject, "summary": alerts[0].title, "channel": alerts[0].channel,
         "first_fired_at": datetime(2026, 3, 20, 6, 0)}
    )
    payloads.append(slack_message(Notification("resolved", resolved, "run-2", AT)))
    check_golden("slack_payloads.json", payloads)


@pytest.mark.parametrize("event", ["firing", "resolved"])
def test_console_line(event):
    line = console_line(Notification(event, make_alert(), "run-1", AT))
    assert line.startswith("critical" if event == "firing" else "resolved")
    assert "kpi_off_trajectory -> U0ANN" in line
