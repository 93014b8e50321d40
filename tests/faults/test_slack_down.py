"""Slack down (connections refused) for a whole delivery, then back: every message stays in
the outbox, the next run delivers each exactly once. Once Slack refuses the connection the
rest of the queue is held at once instead of each message waiting out its own retries (five
messages took 5 × 3.5 s before; a run with 100 pending messages would have stalled 6 minutes).
The same through the real `kpiwatch run` is in test_fault_chain.py."""
from __future__ import annotations

import socket
from collections import Counter
from datetime import date, datetime

import duckdb

from alerts.delivery import file_warehouse
from alerts.engine import run_alerts
from alerts.rules import load_rules
from alerts.sinks import SlackSink, Transport
from tests.support.slack_server import FakeSlack
from tests.unit.test_alerts_warehouse import EXPECTED_ALERTS, build_warehouse

TOKEN = "xoxb-slack-down-token"


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/api/"


def _run(wh, base_url: str, run_id: str):
    sink = SlackSink(TOKEN, base_url, timeout=2)  # the default backoff: 0.5 s, 1 s, 2 s
    return run_alerts(file_warehouse(wh), load_rules(), Transport(sink), run_id=run_id,
                      clock=lambda: datetime(2026, 4, 20, 6, 0), as_of=date(2026, 4, 20))


def test_slack_down_holds_the_outbox_then_delivers_each_message_once(tmp_path):
    wh = tmp_path / "wh.duckdb"
    build_warehouse(duckdb.connect(str(wh))).close()
    down = _run(wh, _dead_url(), "run-down")
    d = down.delivery
    # one message tried (and left pending), the other four held without trying: no run waits
    # out every message's retries while Slack is unreachable
    assert (d.sent, d.pending, d.held, d.failed) == (0, 1, 4, 0), d
    assert d.unreachable and "Slack unreachable" in str(d)
    con = duckdb.connect(str(wh))
    statuses = dict(con.execute("select status, count(*) from alerting.outbox group by 1").fetchall())
    con.close()
    assert statuses == {"pending": 5}
    with FakeSlack(tokens={TOKEN}) as slack:
        back = _run(wh, slack.base_url, "run-back")
        keys = Counter(slack.keys())
    assert back.delivery.sent == 5 and back.delivery.possible_duplicates == 0
    assert len(keys) == 5 and set(keys.values()) == {1}
    con = duckdb.connect(str(wh))
    import json

    notes = Counter((n["fingerprint"], n["event"]) for (payload,) in con.execute(
        "select notifications from alerting.outbox where status = 'sent'").fetchall() for n in json.loads(payload))
    con.close()
    assert len(notes) == len(EXPECTED_ALERTS) == 7 and set(notes.values()) == {1}
