"""How a real `kpiwatch run` ends, for a scheduler (README, "Exit codes"):

- stopped by SIGTERM (or SIGINT) while dbt builds: exit 130 in one line, and no child process left behind
  (the `dbt build` it started is gone too); the warehouse is free again at once;
- alerts that could not be delivered (Slack rejecting the bot token, the local Slack stand-in):
  the data run succeeds, the alerts are held in the outbox, exit 5 with one line saying so; the
  next run with a good token delivers each held message once and exits 0.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from pipelines.shutdown import _alive, descendants
from tests.faults.support import CHILD, ROOT, clean_env, kpiwatch, query
from tests.support.slack_server import FakeSlack

pytestmark = pytest.mark.slow
EXIT_ALERTS_HELD = 5
TOKEN = "xoxb-exit-codes-token"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_leaves_no_child_process(tmp_path, demo_data, signum):
    data, wh = tmp_path / "data", tmp_path / "wh" / "kpiwatch.duckdb"
    shutil.copytree(demo_data, data)
    env = clean_env()
    run = subprocess.Popen([sys.executable, "-c", CHILD, "run", "--data-dir", str(data), "--warehouse", str(wh)],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, dbt = [], []
    try:
        for line in run.stdout:  # wait until the run is inside dbt
            seen.append(line)
            if "→ kpiwatch_dbt_models" in line:
                break
        deadline = time.monotonic() + 60
        while not dbt and time.monotonic() < deadline:
            dbt = [p for p in descendants(run.pid) if " build" in _cmdline(p) and "dbt" in _cmdline(p)]
            time.sleep(0.1)
        assert dbt, "no dbt build process seen: " + "".join(seen)
        children = descendants(run.pid)
        stopped_at = time.monotonic()
        run.send_signal(signum)  # to the run's process only, as a scheduler does
        rest = run.stdout.read()
        run.wait(timeout=60)
        took = time.monotonic() - stopped_at
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    out = "".join(seen) + rest
    assert run.returncode == 130, out[-3000:]
    assert "Traceback" not in out
    stopped = [ln for ln in out.splitlines() if "run stopped" in ln]
    assert len(stopped) == 1 and "no child process left running" in stopped[0], out[-3000:]
    assert "no summary" not in out and not re.search(r"run \S+ failed", out), out[-3000:]
    assert not any(_alive(p) for p in dbt), dbt  # the dbt build is gone with the run
    # Anything else it started is gone too (multiprocessing's resource tracker ends just after it).
    ends = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < ends:
        time.sleep(0.1)
    left = [(p, _cmdline(p)) for p in children if _alive(p)]
    assert left == [], left
    assert took < 30, took
    # The run let go of the warehouse: a command is not refused as busy.
    status = kpiwatch("status", "--warehouse", str(wh), env=env)
    assert status.returncode != 3 and "warehouse busy" not in status.stdout + status.stderr, status.stderr


def test_alerts_that_cannot_be_delivered_exit_4_and_go_out_with_the_next_run(tmp_path, demo_data):
    data, wh = tmp_path / "data", tmp_path / "wh" / "kpiwatch.duckdb"
    shutil.copytree(demo_data, data)
    args = ("run", "--data-dir", str(data), "--warehouse", str(wh), "--quiet")
    with FakeSlack(tokens={TOKEN}) as slack:
        bad = kpiwatch(*args, env=clean_env(SLACK_BOT_TOKEN="xoxb-revoked-token", KPIWATCH_SLACK_BASE_URL=slack.base_url,
                                            KPIWATCH_SLACK_TIMEOUT="2"), timeout=400)
        posted_while_bad = len(slack.calls("chat.postMessage"))
        out = bad.stdout + bad.stderr
        assert bad.returncode == EXIT_ALERTS_HELD, out[-3000:]
        assert "succeeded" in bad.stdout and "Traceback" not in out  # the data run itself succeeded
        held = [ln for ln in bad.stderr.splitlines() if ln.startswith("alerts held:")]
        assert len(held) == 1 and "not delivered" in held[0] and "the outbox keeps them for the next run" in held[0], out[-3000:]
        assert "xoxb-revoked-token" not in out
        pending = query(wh, "select count(*) from alerting.outbox where status = 'pending'")[0][0]
        assert pending > 0 and f"{pending} alert message(s) not delivered ({pending} pending)" in held[0], held[0]
        assert query(wh, "select count(*) from alerting.outbox where status = 'sent'") == [(0,)]

        good = kpiwatch(*args, env=clean_env(SLACK_BOT_TOKEN=TOKEN, KPIWATCH_SLACK_BASE_URL=slack.base_url,
                                             KPIWATCH_SLACK_TIMEOUT="2"), timeout=400)
        keys = Counter(slack.keys())
    assert good.returncode == 0, (good.stdout + good.stderr)[-3000:]
    assert "alerts held" not in good.stdout + good.stderr
    assert query(wh, "select count(*) from alerting.outbox where status in ('pending', 'sending')") == [(0,)]
    # Each held message reached Slack once.
    assert len([k for k in keys if k]) >= pending and set(keys.values()) == {1}, keys
    print(f"\n[exit codes] bad token: exit {bad.returncode}, {pending} message(s) held, {posted_while_bad} rejected "
          f"post(s); good token: exit 0, {len(keys)} message(s) delivered once")
