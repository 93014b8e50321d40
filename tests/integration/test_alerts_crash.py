"""A process killed (SIGKILL) in the middle of delivering, then run again: every alert reaches
Slack exactly once.

The alert run happens in a real subprocess talking to the local Slack Web API server in this
process. A hook in the child kills it with SIGKILL at the chosen point — right after the
HTTP call of the N-th message returned (Slack has it, the warehouse does not know yet), right
before the N-th HTTP call (marked ``sending``, not posted), or right after the decisions were
committed (nothing sent). The rerun must deliver what is missing and nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tests.support.slack_server import FakeSlack
from tests.unit.test_alerts_warehouse import EXPECTED_ALERTS, build_warehouse

TOKEN = "xoxb-crash-test-token"
ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, signal, sys
from datetime import date, datetime

from alerts.delivery import file_warehouse
from alerts.engine import dispatch, evaluate, run_alerts
from alerts.rules import load_rules
from alerts.sinks import SlackSink, Transport

warehouse, base_url, token, point, nth, run_id = sys.argv[1:7]
nth = int(nth)
rules = load_rules()
open_warehouse = file_warehouse(warehouse)
clock = lambda: datetime(2026, 4, 20, 6, 0)

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if point == "after_plan":
    with open_warehouse() as con:
        dispatch(con, evaluate(con, rules, as_of=date(2026, 4, 20)), rules, run_id=run_id, now=clock())
    die()

sink = SlackSink(token, base_url, timeout=2, backoff=0.05)
if os.environ.get("KPIWATCH_TEST_NO_CHECK"):
    sink.find = lambda out: None  # the negative control: no "was it delivered?" check
posts = 0
post = sink.post

def counting_post(out):
    global posts
    posts += 1
    if point == "before_send" and posts == nth:
        die()  # claimed ("sending") and committed, but never posted
    return post(out)

sink.post = counting_post

def after_send(out, result):
    if point == "after_send" and posts == nth:
        die()  # Slack has the message; the outbox still says "sending"

run = run_alerts(open_warehouse, rules, Transport(sink), run_id=run_id, clock=clock, as_of=date(2026, 4, 20),
                 after_send=after_send)
print("DELIVERY " + json.dumps(run.delivery.to_dict()))
"""


def run_child(warehouse: Path, slack: FakeSlack, point: str, nth: int, run_id: str,
              check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KPIWATCH_"))}
    if not check:
        env["KPIWATCH_TEST_NO_CHECK"] = "1"
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(warehouse), slack.base_url, TOKEN, point, str(nth), run_id],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def outbox(warehouse: Path) -> dict[str, dict]:
    con = duckdb.connect(str(warehouse))
    try:
        cursor = con.execute("select * from alerting.outbox")
        names = [c[0] for c in cursor.description]
        return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize(
    ("point", "nth", "recovered"),
    [
        ("after_send", 1, 1),  # killed between Slack's answer and recording it
        ("after_send", 3, 1),
        ("before_send", 2, 0),  # killed after marking "sending", before the HTTP call
        ("after_plan", 0, 0),  # killed after deciding, before sending anything
    ],
)
def test_killed_mid_delivery_then_rerun_delivers_every_alert_exactly_once(tmp_path, point, nth, recovered):
    warehouse = tmp_path / "warehouse.duckdb"
    build_warehouse(duckdb.connect(str(warehouse))).close()
    counts = kill_then_rerun_delivers_once(warehouse, point, nth, recovered, run_child, outbox)
    print(f"\n[delivery counts] kill {point} #{nth}: {json.dumps(counts)}")


def kill_then_rerun_delivers_once(warehouse, point: str, nth: int, recovered: int, child, read_outbox) -> dict:
    """Kill the delivering process at `point` (the nth post), run it again, and check that every
    alert reached Slack exactly once; `child` runs the process, `read_outbox` reads the outbox
    (both per warehouse target). Returns the delivery counts."""
    with FakeSlack(tokens={TOKEN}) as slack:
        killed = child(warehouse, slack, point, nth, "run-killed")
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        posted_before = len(slack.messages)
        assert posted_before == (nth if point == "after_send" else max(nth - 1, 0))

        rerun = child(warehouse, slack, "none", 0, "run-again")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        delivery = json.loads(rerun.stdout.split("DELIVERY ", 1)[1])

        rows = read_outbox(warehouse)
        keys = slack.keys()
        # Every outbox message reached Slack exactly once ...
        assert Counter(keys) == Counter(rows.keys()), Counter(keys)
        assert {r["status"] for r in rows.values()} == {"sent"}
        # ... so every alert did, in one message per recipient.
        notes = Counter((n["fingerprint"], n["event"]) for key in keys for n in json.loads(rows[key]["notifications"]))
        expected = {(r, s) for r, s, _ in EXPECTED_ALERTS}
        assert len(notes) == len(expected) == 7 and set(notes.values()) == {1}
        assert sorted(m["channel"] for m in slack.messages) == sorted({c for _, _, c in EXPECTED_ALERTS})
        assert delivery["recovered"] == recovered  # found in the channel history, not re-posted
        assert delivery["sent"] == 5 - posted_before and delivery["possible_duplicates"] == 0
        return {"expected": 7, "delivered": len(notes), "duplicated": sum(notes.values()) - len(notes),
                "messages": len(keys), "distinct_messages": len(set(keys)), "posted_before_kill": posted_before,
                "recovered_on_rerun": delivery["recovered"]}


def test_the_kill_test_detects_duplicates_when_the_check_is_disabled(tmp_path):
    """Negative control: without looking for the message before re-posting, the same kill
    gives a duplicate — so the test above would catch a regression."""
    warehouse = tmp_path / "warehouse.duckdb"
    build_warehouse(duckdb.connect(str(warehouse))).close()
    with FakeSlack(tokens={TOKEN}) as slack:
        assert run_child(warehouse, slack, "after_send", 2, "run-killed", check=False).returncode == -signal.SIGKILL
        assert run_child(warehouse, slack, "none", 0, "run-again", check=False).returncode == 0
        keys = Counter(slack.keys())
    assert len(keys) == 5 and sorted(keys.values()) == [1, 1, 1, 1, 2]
