"""The DuckDB warehouse file held by another process: `kpiwatch run` and `kpiwatch status` stop
with a clear "warehouse busy" error and exit code 3 (WarehouseBusy), and change nothing. (A re-run after a failure is the kill tests' subject.)"""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.faults.support import clean_env, kpiwatch

pytestmark = pytest.mark.slow
EXIT_BUSY = 3


def test_locked_warehouse_is_a_clear_error_with_exit_code_3(tmp_path, demo_data):
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    wh = tmp_path / "wh" / "kpiwatch.duckdb"
    wh.parent.mkdir()
    # Another process (say a notebook) holds the warehouse open.
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "c.execute('create table if not exists notebook (x int)'); print('held', flush=True); "
                               "time.sleep(300)", str(wh)], stdout=subprocess.PIPE, text=True)
    env = clean_env()
    try:
        assert holder.stdout.readline().strip() == "held"
        run = kpiwatch("run", "--data-dir", str(data), "--warehouse", str(wh), "--quiet", env=env)
        status = kpiwatch("status", "--warehouse", str(wh), env=env)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == EXIT_BUSY, run.stdout + run.stderr
    assert "warehouse busy" in " ".join((run.stdout + run.stderr).split())
    assert "Traceback" not in run.stdout + run.stderr
    assert status.returncode == EXIT_BUSY and "warehouse busy" in " ".join(status.stderr.split()), status.stderr
    # Nothing was written by the refused run (the tables are the holder's only).
    from tests.faults.support import query

    assert query(wh, "select count(*) from information_schema.tables where table_schema = 'raw'") == [(0,)]
