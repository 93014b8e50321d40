"""A run holds the DuckDB warehouse for its whole length (issue 19): while a real `kpiwatch run`
is in its dbt step, `report`, `silence add`, `status` and a second `run` are each refused in one
line with exit code 3, the second run before it starts Dagster; the first run is not disturbed
and completes; afterwards the same commands work."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.faults.support import CHILD, ROOT, clean_env, kpiwatch, query

pytestmark = pytest.mark.slow
EXIT_BUSY = 3


def _busy_line(r) -> str:
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout + r.stderr
    return lines[0]


def test_commands_and_a_second_run_are_refused_while_a_run_holds_the_warehouse(tmp_path, demo_data):
    data, wh = tmp_path / "data", tmp_path / "wh" / "kpiwatch.duckdb"
    shutil.copytree(demo_data, data)
    env = clean_env()
    first = subprocess.Popen([sys.executable, "-c", CHILD, "run", "--data-dir", str(data), "--warehouse", str(wh)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in first.stdout:  # wait until the run is inside dbt (the warehouse exists by then)
            seen.append(line)
            if "→ kpiwatch_dbt_models" in line:
                break
        assert first.poll() is None, "".join(seen)
        commands = {
            "report": ("report", "--warehouse", str(wh), "--out", str(tmp_path / "s.html")),
            "silence": ("silence", "add", "--kpi", "ae_4h", "--until", "2026-12-31", "--reason", "test",
                        "--warehouse", str(wh)),
            "status": ("status", "--warehouse", str(wh)),
            "run": ("run", "--data-dir", str(data), "--warehouse", str(wh)),
        }
        started = {}
        procs = {}
        for name, args in commands.items():
            started[name] = time.monotonic()
            procs[name] = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        results = {}
        for name, p in procs.items():
            out, err = p.communicate(timeout=120)
            results[name] = (subprocess.CompletedProcess(p.args, p.returncode, out, err), time.monotonic() - started[name])
        assert first.poll() is None, "the first run ended before the commands were refused"
        rest = first.stdout.read()
        first.wait(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    for name, (r, _) in results.items():
        assert r.returncode == EXIT_BUSY, (name, r.stdout, r.stderr)
        line = _busy_line(r)
        assert "warehouse busy" in line and "kpiwatch run" in line and "Traceback" not in line, (name, line)
    second, took = results["run"]
    assert f"process {first.pid}" in _busy_line(second)
    # Refused before preparing dbt or starting Dagster: no "kpiwatch run:" header, no step.
    assert "→" not in second.stdout and "preparing" not in second.stdout, second.stdout
    assert took < 20, took
    # The first run was not disturbed.
    assert first.returncode == 0, "".join(seen) + rest
    assert "succeeded" in rest
    assert query(wh, "select count(*) from ledger.runs") == [(1,)]
    assert query(wh, "select count(*) from alerting.silences")[0][0] == 0
    # Once it has finished, the same commands work.
    after = kpiwatch(*commands["status"], env=env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert not os.path.exists(str(wh) + ".wal")
