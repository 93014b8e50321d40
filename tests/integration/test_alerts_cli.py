"""`kpiwatch silence add/list/expire`, `ack`, `alerts` and `digest` on a DuckDB warehouse in
tmp_path, with Slack served by the local Slack Web API server."""

from __future__ import annotations

import json

import duckdb
import pytest
from typer.testing import CliRunner

from alerts.engine import run_alerts
from pipelines.alerting.runtime import load_rules_for, open_warehouse, transport_for
from pipelines.cli import app
from pipelines.config import Settings
from tests.support.slack_server import FakeSlack
from tests.unit.test_alerts_warehouse import AS_OF, build_warehouse

TOKEN = "xoxb-cli-test-token-777"


@pytest.fixture
def slack():
    with FakeSlack(tokens={TOKEN}) as server:
        yield server


@pytest.fixture
def settings(tmp_path, monkeypatch, slack):
    warehouse = tmp_path / "wh" / "kpiwatch.duckdb"
    warehouse.parent.mkdir()
    build_warehouse(duckdb.connect(str(warehouse))).close()
    for var in ("KPIWATCH_ALERT_RULES", "KPIWATCH_AS_OF", "KPIWATCH_CATALOG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KPIWATCH_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("KPIWATCH_ALERTS_FILE", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("KPIWATCH_SLACK_BASE_URL", slack.base_url)
    return Settings.from_env().resolved()


def kpiwatch(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert TOKEN not in result.output + (result.stderr or "")
    return result


def alert_run(settings, run_id):
    return run_alerts(open_warehouse(settings), load_rules_for(settings), transport_for(settings),
                      run_id=run_id, as_of=AS_OF)


def test_silence_add_list_expire(settings, slack):
    added = kpiwatch("silence", "add", "--department", "transport", "--until", "2099-01-31",
                     "--reason", "new ticketing system", "--by", "Priya")
    assert added.exit_code == 0, added.output
    assert added.output.strip() == "silence 1 added: department transport until 2099-02-01 00:00 UTC — new ticketing system"
    listed = json.loads(kpiwatch("silence", "list", "--format", "json").output)
    assert [(s["silence_id"], s["target_type"], s["target"], s["created_by"], s["active"]) for s in listed] == [
        (1, "department", "transport", "Priya", True)]
    assert "new ticketing system" in kpiwatch("silence", "list").output

    # The silence holds back transport's alerts and records itself against them.
    run = alert_run(settings, "run-1")
    assert run.dispatch.silenced == 2
    assert not any(m["channel"] == "C0TRANSPORT" for m in slack.messages)
    with duckdb.connect(str(settings.warehouse)) as con:
        silenced = con.execute("select distinct silence_id from alerting.alert_log where outcome = 'silenced'").fetchall()
    assert silenced == [(1,)]

    expired = kpiwatch("silence", "expire", "1")
    assert expired.exit_code == 0 and expired.output.strip() == "silence 1 expired (department transport)"
    assert kpiwatch("silence", "list").output.strip() == "no active silences"
    assert json.loads(kpiwatch("silence", "list", "--all", "--format", "json").output)[0]["expired_at"]
    released = alert_run(settings, "run-2")
    assert released.dispatch.new == 2
    assert [m["channel"] for m in slack.messages].count("C0TRANSPORT") == 1  # grouped


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kpi", "wait_time", "--rule", "sudden_jump"], "give exactly one of --kpi ID, --department ID or --rule NAME"),
        (["--kpi", "waiting"], "unknown kpi 'waiting' (known: budget_variance, bus_punctuality, vaccination_rate, wait_time)"),
        (["--rule", "nope"], "unknown rule 'nope'"),
        (["--department", "health", "--until", "2020-01-01"], "is not in the future"),
        (["--department", "health", "--until", "next week"], "--until 'next week' is not a date"),
    ],
)
def test_silence_add_errors(settings, args, message):
    if "--until" not in args:
        args = args + ["--until", "2099-01-01"]
    result = kpiwatch("silence", "add", *args, "--reason", "test")
    assert result.exit_code == 2
    assert message in " ".join((result.output + (result.stderr or "")).split())


def test_silence_expire_unknown_and_missing_warehouse(settings, tmp_path):
    result = kpiwatch("silence", "expire", "42")
    assert result.exit_code == 2 and "no silence with id 42" in result.output + (result.stderr or "")
    missing = kpiwatch("silence", "list", "--warehouse", str(tmp_path / "nowhere.duckdb"))
    assert missing.exit_code == 2 and "does not exist yet" in missing.output + (missing.stderr or "")


def test_ack_and_alerts(settings, slack):
    alert_run(settings, "run-1")
    firing = json.loads(kpiwatch("alerts", "--format", "json").output)
    assert len(firing) == 7 and not any(a["acknowledged"] for a in firing)
    missed = next(a for a in firing if a["rule"] == "milestone_off_track")

    done = kpiwatch("ack", missed["fingerprint"][:8], "--by", "Mia Lead", "--note", "recovery plan agreed")
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (f"acknowledged {missed['fingerprint']} (Milestone missed: Waits under 15 days by "
                                   f"March) by Mia Lead: recovery plan agreed")
    after = {a["fingerprint"]: a for a in json.loads(kpiwatch("alerts", "--format", "json").output)}
    assert after[missed["fingerprint"]]["acknowledged"] is True
    assert "(acknowledged)" in kpiwatch("alerts").output
    with duckdb.connect(str(settings.warehouse)) as con:
        assert con.execute("select acked_by, note from alerting.acks").fetchall() == [("Mia Lead", "recovery plan agreed")]

    unknown = kpiwatch("ack", "ffffffffffff", "--by", "x", "--note", "y")
    assert unknown.exit_code == 2 and "no alert with fingerprint 'ffffffffffff'" in unknown.output + (unknown.stderr or "")
    assert kpiwatch("ack", missed["fingerprint"], "--by", "x").exit_code == 2  # --note is required


def test_digest_once_per_week(settings, slack):
    first = kpiwatch("digest")
    assert first.exit_code == 0, first.output
    assert "4 digest(s): 1 owner(s), 3 department(s)" in first.output and "4 new this week" in first.output
    assert sorted(m["channel"] for m in slack.messages) == ["#health-kpis", "#kpiwatch-alerts", "C0TRANSPORT", "U0ANN"]
    assert all(m["blocks"][0]["text"]["text"].startswith(":bar_chart: Weekly KPI digest") for m in slack.messages)
    again = kpiwatch("digest")
    assert again.exit_code == 0 and "0 new this week, 4 already sent this week" in again.output
    assert len(slack.messages) == 4
    dry = kpiwatch("digest", "--dry-run")
    assert "→ U0ANN: Weekly KPI digest for Ann Owner" in dry.output and len(slack.messages) == 4


def test_kpiwatch_now_pins_the_clock_of_a_command(settings, monkeypatch):
    # A silence's start, its activity and `--until` read the command's one clock: pinned here,
    # the outcome is the same whatever day the tests run.
    monkeypatch.setenv("KPIWATCH_NOW", "2026-11-20T09:00")
    added = kpiwatch("silence", "add", "--kpi", "bus_punctuality", "--until", "2026-11-30", "--reason", "works")
    assert added.exit_code == 0, added.output
    [s] = json.loads(kpiwatch("silence", "list", "--format", "json").output)
    assert (s["created_at"], s["active"]) == ("2026-11-20T09:00:00", True)
    monkeypatch.setenv("KPIWATCH_NOW", "2026-12-02")  # after its end: no longer active
    assert json.loads(kpiwatch("silence", "list", "--format", "json").output) == []
    [s] = json.loads(kpiwatch("silence", "list", "--all", "--format", "json").output)
    assert s["active"] is False
    monkeypatch.setenv("KPIWATCH_NOW", "tomorrow")
    bad = kpiwatch("silence", "list")
    assert bad.exit_code == 2 and "KPIWATCH_NOW: 'tomorrow' is not a date" in bad.output
    assert "Traceback" not in bad.output
