"""The Block Kit formatter: key fields, grouping, links, limits, escaping, and golden payloads.

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

from alerts.conditions import evaluate, pipeline_failure_alert
from alerts.digest import build_digests
from alerts.engine import _resolved_alert
from alerts.formatting import (
    LinkConfig,
    console_line,
    fallback_text,
    format_message,
    rerouted_payload,
    slack_message,
)
from alerts.model import Alert, Message, Notification
from alerts.rules import load_rules
from tests.unit.test_alerts_warehouse import AS_OF, build_warehouse

GOLDEN = Path(__file__).parent / "golden"
AT = datetime(2026, 4, 20, 6, 0)
LINKS = LinkConfig(dagster_url="https://dagster.example.org/", report_url="https://kpi.example.org/report.html")


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
        department_id="health", kpi_id="wait_time",
        fields={"KPI": "Median wait time", "Actual": "18.5 days"}, labels={"status": "red"}, as_of=date(2026, 4, 20),
        dagster_path="assets/fct_kpi_progress", report_anchor="kpi-wait_time",
    )
    values.update(overrides)
    return Alert(**values)


def note(event="firing", channel="U0ANN", **overrides) -> Notification:
    extra = {k: overrides.pop(k) for k in ("previous_labels", "since", "note", "ack_hint") if k in overrides}
    return Notification(event, make_alert(**overrides), "run-1", AT, channel=channel, seq=1, **extra)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp("fmt") / "w.duckdb"
    con = build_warehouse(duckdb.connect(str(path)))
    rules = load_rules()
    alerts = evaluate(con, rules, as_of=AS_OF)
    digests = build_digests(con, rules, now=AT, as_of=AS_OF)
    con.close()
    return rules, alerts, digests


def test_a_single_alert_has_header_fields_change_and_links():
    alert = make_alert()
    message = slack_message(note(), LINKS)
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
    text = context["elements"][0]["text"]
    assert text.startswith("*critical* · new · rule `kpi_off_trajectory` · as of 2026-04-20")
    assert f"fingerprint `{alert.fingerprint}`" in text
    assert "<https://dagster.example.org/assets/fct_kpi_progress|Dagster>" in text
    assert "<https://kpi.example.org/report.html#kpi-wait_time|Report>" in text


def test_links_come_from_the_environment():
    env = {"KPIWATCH_BASE_URL": "http://dagster.internal:3000", "KPIWATCH_REPORT_URL": "https://r.example/x.html#old"}
    links = LinkConfig.from_env(env)
    assert links.dagster("assets/ingest/health_csv?view=checks") == \
        "http://dagster.internal:3000/assets/ingest/health_csv?view=checks"
    assert links.report("kpi-a b") == "https://r.example/x.html#kpi-a%20b"
    default = LinkConfig.from_env({})
    assert default.dagster("runs/1") == "http://127.0.0.1:3000/runs/1" and default.report("x") is None
    text = slack_message(note(), default)["blocks"][-1]["elements"][0]["text"]
    assert "Dagster>" in text and "Report>" not in text


def test_change_repeat_escalation_resolved_and_ack_hint():
    changed = slack_message(note(previous_labels={"status": "amber"}, ack_hint=True), LINKS)
    context = changed["blocks"][-1]["elements"][0]["text"]
    assert "· amber → red ·" in context
    assert context.endswith("Acknowledge: `kpiwatch ack " + make_alert().fingerprint + " --by NAME --note TEXT`")
    repeat = slack_message(note("repeat", since=datetime(2026, 4, 1)), LINKS)
    assert repeat["blocks"][0]["text"]["text"] == ":repeat: Still firing: Median wait time is red"
    assert repeat["text"].startswith("[REMINDER] Still firing: ")
    assert "reminder: firing since 2026-04-01, not acknowledged" in repeat["blocks"][-1]["elements"][0]["text"]
    escalated = slack_message(note("escalated", note="Not acknowledged 3 days after it became missed."), LINKS)
    assert escalated["blocks"][0]["text"]["text"].startswith(":rotating_light: Escalated: ")
    assert escalated["blocks"][1]["text"]["text"].endswith("\nNot acknowledged 3 days after it became missed.")
    resolved = slack_message(note("resolved", fields={}, ack_hint=True), LINKS)
    assert resolved["text"].startswith("[RESOLVED] Resolved: Median wait time is red: ")
    assert resolved["blocks"][0]["text"]["text"].startswith(":white_check_mark: Resolved:")
    assert "fields" not in resolved["blocks"][1]  # Slack rejects an empty fields list
    assert "Acknowledge" not in json.dumps(resolved)


def test_a_grouped_message_lists_every_alert_most_severe_first():
    notes = (
        note("resolved", subject="a", title="Claimants is amber", severity="warning", fields={}),
        note(subject="b", title="Jobs jumped", severity="warning", rule="sudden_jump"),
        note(subject="c", title="Waits are red"),
    )
    message = format_message(Message("U0ANN", notes), LINKS)
    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == ":bell: 3 kpiwatch alerts: 1 critical, 1 warning, 1 resolved"
    sections = [b["text"]["text"].split("\n")[0] for b in blocks if b["type"] == "section" and "text" in b]
    assert sections == ["*:red_circle: Waits are red*", "*:large_orange_circle: Jobs jumped*",
                        "*:white_check_mark: Resolved: Claimants is amber*"]
    assert [b["type"] for b in blocks].count("divider") == 2
    assert message["text"] == ("kpiwatch: 3 alerts (1 critical, 1 warning, 1 resolved) — [CRITICAL] Waits are red; "
                               "[WARNING] Jobs jumped; [RESOLVED] Resolved: Claimants is amber")


def test_a_large_group_stays_within_slack_limits():
    notes = tuple(note(subject=f"k{i:02d}", title=f"KPI {i:02d} is red", fields={f"F{j}": "v" for j in range(12)})
                  for i in range(25))
    message = format_message(Message("U0ANN", notes), LINKS)
    assert len(message["blocks"]) <= 50
    assert message["blocks"][-1]["text"]["text"].startswith("*And 15 more:*\n• :red_circle: KPI 10 is red")
    assert all(len(b.get("fields", [])) <= 10 for b in message["blocks"])
    assert "KPI 24 is red" in message["text"]  # the plain-text fallback names every alert


def test_escaping_limits_and_determinism():
    alert_note = note(title="x" * 300, text="a <b> & c\nnext line", fields={f"F{i}": f"<v{i}>" for i in range(13)})
    message = slack_message(alert_note, LINKS)
    assert message == slack_message(alert_note, LINKS)
    header, first, second, _ = message["blocks"]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")
    assert first["text"]["text"] == "a &lt;b&gt; &amp; c\nnext line"
    assert len(first["fields"]) == 10 and len(second["fields"]) == 3  # Slack's 10-field limit
    assert second["fields"][0]["text"] == "*F10*\n&lt;v10&gt;"
    assert "\n" not in fallback_text(Message("U0ANN", (alert_note,))) and "\n" not in console_line(alert_note)


HOSTILE = "<!channel> <@U0BOSS> <https://evil.example|click> & <#C0ALL>"


def _strings(value):
    """Every string Slack parses as markup in a payload, however deep: `plain_text` objects
    (the header) are shown as written and never parsed for mentions, so they are left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if value.get("type") == "plain_text":
            return
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_data_borne_slack_markup_is_escaped_in_text_and_every_block():
    # Regression: the blocks were escaped but the top-level `text` (notifications, previews,
    # screen readers) carried a KPI name's `<!channel>` raw, and Slack parses it.
    single = note(title=f"KPI {HOSTILE} is red", text=f"column {HOSTILE} changed", fields={HOSTILE: HOSTILE},
                  note=HOSTILE)
    group = Message("#health", (single, note(channel="#health", title=f"Other {HOSTILE}", subject="other")))
    for message in (slack_message(single, LINKS), format_message(group, LINKS),
                    rerouted_payload(slack_message(single, LINKS), "#fallback", f"bad {HOSTILE}")):
        assert "&lt;!channel&gt;" in message["text"]
        for text in _strings({k: v for k, v in message.items() if k != "channel"}):
            for raw in ("<!channel>", "<@U0BOSS>", "<https://evil.example|click>", "<#C0ALL>"):
                assert raw not in text, (raw, text)
    # The console shows the text as written.
    assert "<!channel>" in fallback_text(Message("U0ANN", (single,)))


@pytest.mark.parametrize("filler", [298, 299, 300, 301, 302, 303])
def test_truncation_never_cuts_an_escaped_entity(filler):
    # Regression: escaping before cutting could end a text with `&am…` (a stray `&`).
    message = slack_message(note(title="t", text="x" * filler + "&" * 50 + "<" * 50), LINKS)
    for text in _strings(message):
        tail = text[-6:]
        if text.endswith("…") and "&" in tail:
            assert tail[tail.rindex("&"):].startswith(("&amp;", "&lt;", "&gt;")), text[-12:]
    assert len(message["text"]) <= 3000


def test_a_rerouted_payload_says_where_it_could_not_go():
    payload = rerouted_payload(slack_message(note(), LINKS), "#kpiwatch-alerts", "channel_not_found")
    assert payload["channel"] == "#kpiwatch-alerts"
    assert payload["text"].startswith("[undeliverable to U0ANN: channel_not_found] [CRITICAL]")
    assert payload["blocks"][1]["elements"][0]["text"] == (
        ":warning: Could not be delivered to `U0ANN` (channel_not_found); posted here instead.")


def test_golden_payloads_for_the_scenario(scenario):
    rules, alerts, digests = scenario
    singles = [slack_message(Notification("firing", a, "run-1", AT, seq=1), LINKS) for a in alerts]
    resolved = _resolved_alert(
        {"rule": alerts[0].rule, "kind": alerts[0].kind, "severity": alerts[0].severity, "subject": alerts[0].subject,
         "summary": alerts[0].title, "channel": alerts[0].channel, "first_fired_at": datetime(2026, 3, 20, 6, 0)},
        "green",
    )
    singles.append(slack_message(Notification("resolved", resolved, "run-2", AT, seq=2), LINKS))
    check_golden("slack_payloads.json", singles)

    # What Ann (owner of two firing alerts) gets in one run: one grouped message.
    ann = tuple(Notification("firing", a, "run-1", AT, channel="U0ANN", seq=1) for a in alerts if a.channel == "U0ANN")
    assert len(ann) == 2
    check_golden("grouped_message.json", format_message(Message("U0ANN", ann), LINKS))

    missed = next(a for a in alerts if a.subject == "m_wait_q1")
    lifecycle = [
        format_message(Message("U0MIA", (Notification("repeat", missed, "run-8", AT, channel="U0MIA", seq=2,
                                                      since=datetime(2026, 4, 13, 6), ack_hint=True),)), LINKS),
        format_message(Message("U0HAL", (Notification(
            "escalated", missed, "run-4", AT, channel="U0HAL", seq=3, since=datetime(2026, 4, 17, 6),
            note="Not acknowledged 3 days after it became missed; escalated to department head. Owner: Mia Lead.",
            ack_hint=True),)), LINKS),
    ]
    check_golden("lifecycle_messages.json", lifecycle)

    failure = pipeline_failure_alert(rules, job_name="kpiwatch_all", run_id="0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
                                     failed_steps=["kpiwatch_dbt_models"], error="dbt build failed: 2 models errored",
                                     started_at=datetime(2026, 4, 20, 6, 0))
    check_golden("pipeline_failure.json", slack_message(Notification("firing", failure, "s", AT, seq=1), LINKS))

    check_golden("digests.json", [format_message(Message(d.channel, digest=d), LINKS) for d in digests])


def test_digest_content(scenario):
    _, _, digests = scenario
    by = {(d.audience, d.channel): d for d in digests}
    assert set(by) == {("owner", "U0ANN"), ("department", "#health-kpis"), ("department", "C0TRANSPORT"),
                       ("department", "#kpiwatch-alerts")}  # finance has no channel: the fallback
    ann = by["owner", "U0ANN"]
    assert ann.name == "Ann Owner" and ann.week == "2026-W17" and ann.as_of == AS_OF
    assert ann.status_counts == {"red": 1, "grey": 1}
    transport = by["department", "C0TRANSPORT"]
    assert transport.changes == ("Bus punctuality: green → amber (2026-01)",)
    assert transport.overdue_sources == ("transport_sql (2 period(s) overdue)",)
    text = fallback_text(Message("C0TRANSPORT", digest=transport))
    assert text == ("Weekly KPI digest for Transport (2026-W17): 1 KPIs — 0 green, 1 amber, 0 red, 0 grey; "
                    "1 change(s); 0 upcoming milestone(s).")
    assert Message("U0ANN", digest=ann).key == Message("U0ANN", digest=ann).key  # once per week


@pytest.mark.parametrize("event", ["firing", "resolved"])
def test_console_line(event):
    line = console_line(note(event))
    assert line.startswith("critical" if event == "firing" else "resolved")
    assert "kpi_off_trajectory -> U0ANN" in line


def test_a_shared_overdue_source_is_in_the_digest_of_each_department_it_feeds(tmp_path):
    """transport_sql made shared (no department) and feeding a health KPI too: both departments'
    digests list it; finance's does not. A department without a channel gets its digest in the
    fallback channel."""
    con = build_warehouse(duckdb.connect(str(tmp_path / "w.duckdb")))
    con.execute("update marts.fct_source_freshness set department_id = null where source_id = 'transport_sql'")
    con.execute("update catalog.kpis set source_id = 'transport_sql' where kpi_id = 'wait_time'")
    con.execute("update catalog.departments set channel = null where department_id = 'health'")
    rules = load_rules()
    digests = {d.department: d for d in build_digests(con, rules, now=AT, as_of=AS_OF) if d.audience == "department"}
    con.close()
    by_id = {"health": digests["Health"], "transport": digests["Transport"], "finance": digests["Finance"]}
    assert "transport_sql" in str(by_id["health"].overdue_sources)
    assert "transport_sql" in str(by_id["transport"].overdue_sources)
    assert "transport_sql" not in str(by_id["finance"].overdue_sources)
    assert by_id["health"].channel == rules.fallback_channel
