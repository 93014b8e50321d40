"""Shared by the fault tests: run the real `kpiwatch` CLI in a child process, optionally killing
it with SIGKILL at a stage boundary, and read the warehouse afterwards."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]

# The child runs the real CLI (`kpiwatch run ...`). KPIWATCH_TEST_KILL_AT makes it SIGKILL
# itself right after a step succeeded ("step:<step key>", as the CLI's progress logger sees the
# event) or right after Slack accepted the n-th message ("slack:<n>", before kpiwatch recorded it).
CHILD = r"""
import os, signal, sys

from pipelines import cli

point = os.environ.get("KPIWATCH_TEST_KILL_AT", "")

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if point.startswith("step:"):
    emit = cli._Progress.emit

    def emit_then_die(self, record):
        emit(self, record)
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if meta else None
        if event is not None and event.event_type_value == "STEP_SUCCESS" and event.step_key == point[5:]:
            die()

    cli._Progress.emit = emit_then_die
elif point.startswith("slack:"):
    from alerts.sinks import SlackSink

    nth, posted, post = int(point[6:]), [0], SlackSink.post

    def post_then_die(self, out):
        result = post(self, out)
        posted[0] += 1
        if posted[0] == nth:
            die()
        return result

    SlackSink.post = post_then_die
sys.argv = ["kpiwatch", *sys.argv[1:]]
cli.main()
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_", "DAGSTER_HOME"))}
    env.update(extra)
    return env


def kpiwatch(*args: str, env: dict[str, str], kill_at: str | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(env)
    if kill_at:
        env["KPIWATCH_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def query(wh: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def table_exists(wh: Path, schema: str, table: str) -> bool:
    return bool(query(wh, "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                      [schema, table])[0][0])


def landing_counts(wh: Path) -> dict:
    """Rows in / landed / quarantined as recorded per batch, and as present in the tables."""
    [(batches, rows_in, accepted, quarantined)] = query(
        wh, "select count(*), sum(rows_in), sum(rows_accepted), sum(rows_quarantined) from raw.batches")
    [(obs, obs_keys)] = query(wh, "select count(*), count(distinct (batch_id, row_number, kpi_id, org_id)) from raw.observations")
    [(quar,)] = query(wh, "select count(*) from raw.quarantine")
    return {"batches": batches, "rows_in": rows_in, "landed": accepted, "quarantined": quarantined,
            "observations": obs, "distinct_observations": obs_keys, "quarantine_rows": quar}


def delivered(wh: Path, slack) -> dict:
    """What reached Slack against what the outbox holds: every outbox message exactly once?"""
    import json

    outbox = {r[0]: (r[1], json.loads(r[2])) for r in query(wh, "select outbox_id, status, notifications from alerting.outbox")}
    keys = Counter(slack.keys())
    notes = Counter((n["fingerprint"], n["event"]) for key in keys for n in outbox[key][1]) if keys.keys() <= outbox.keys() else None
    return {"outbox": outbox, "keys": keys, "notes": notes,
            "statuses": Counter(status for status, _ in outbox.values()),
            "duplicated_messages": sum(n - 1 for n in keys.values()),
            "possible_duplicates": query(wh, "select count(*) from alerting.outbox where possible_duplicate")[0][0]}
