"""tests/integration/test_alerts_crash.py on the Postgres target: a process killed (SIGKILL) in
the middle of delivering, then run again, and every alert reaches Slack exactly once — with the
outbox in PostgreSQL, reached as the pipeline reaches it (pipelines.warehouse.connect,
KPIWATCH_TARGET=postgres). A killed process's open transaction is rolled back by the server."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipelines.warehouse import connect, rows
from tests.integration.test_alerts_crash import CHILD, ROOT, TOKEN, kill_then_rerun_delivers_once
from tests.support.pg import pg_warehouse  # noqa: F401  (fixture)
from tests.support.slack_server import FakeSlack
from tests.unit.test_alerts_engine_postgres import build_pg_warehouse

PG_CHILD = CHILD.replace("from alerts.delivery import file_warehouse\n",
                         "from pipelines.warehouse import connect\n").replace(
    "open_warehouse = file_warehouse(warehouse)", "open_warehouse = lambda: connect(warehouse)")
assert PG_CHILD != CHILD and "file_warehouse" not in PG_CHILD


def run_child(warehouse, slack: FakeSlack, point: str, nth: int, run_id: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}  # keeps the KPIWATCH_PG_* target
    assert env.get("KPIWATCH_TARGET") == "postgres"
    return subprocess.run([sys.executable, "-c", PG_CHILD, str(warehouse), slack.base_url, TOKEN, point, str(nth), run_id],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("point", "nth", "recovered"),
                         [("after_send", 2, 1), ("before_send", 2, 0), ("after_plan", 0, 0)])
def test_killed_mid_delivery_then_rerun_delivers_every_alert_exactly_once_on_postgres(
        pg_warehouse, tmp_path, point, nth, recovered):  # noqa: F811
    warehouse = tmp_path / "local" / "kpiwatch.duckdb"  # places local files only
    with connect(warehouse) as con:
        build_pg_warehouse(con)
    counts = kill_then_rerun_delivers_once(warehouse, point, nth, recovered, run_child, outbox)
    assert counts["duplicated"] == 0


def outbox(warehouse) -> dict[str, dict]:
    with connect(warehouse) as con:
        return {r["outbox_id"]: r for r in rows(con, "select * from alerting.outbox")}
