"""`kpiwatch --target postgres` as a user runs it: the whole demo run, then status, explain,
report and verify-ledger against a fresh database on this machine's PostgreSQL; a warehouse
that cannot be reached is a one-line error; the password never leaves the environment.

The same run keeps Dagster's own run and event storage in PostgreSQL too (dagster-postgres,
configured in $DAGSTER_HOME/dagster.yaml only: docs/scale.md, "Beyond one machine")."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pg import ADMIN, fresh_database, pg_env

psycopg = pytest.importorskip("psycopg")
SECRET = "pw-kpiwatch-pg-s3cret"  # trust auth ignores it; kpiwatch must still never write it out
EXE = str(Path(sys.executable).parent / "kpiwatch")


DAGSTER_YAML = """\
storage:
  postgres:
    postgres_db:
      username: {env: KPIWATCH_DAGSTER_PG_USER}
      password: {env: KPIWATCH_DAGSTER_PG_PASSWORD}
      hostname: {env: KPIWATCH_DAGSTER_PG_HOST}
      db_name: {env: KPIWATCH_DAGSTER_PG_DB}
      port: 5432
telemetry:
  enabled: false
"""


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_", "DAGSTER_HOME"))}
    return {**env, **extra}


def kpiwatch(args, env, check=True):
    proc = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_cli_run_status_explain_report_and_ledger_on_postgres(tmp_path, demo_data):
    pytest.importorskip("dagster_postgres")
    with fresh_database("kpiwatch_cli") as db, fresh_database("kpiwatch_dagster") as dagster_db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
        env = _env({**pg_env(db), "KPIWATCH_PG_PASSWORD": SECRET, "DAGSTER_HOME": str(home),
                    "KPIWATCH_DAGSTER_PG_USER": ADMIN["user"], "KPIWATCH_DAGSTER_PG_PASSWORD": "",
                    "KPIWATCH_DAGSTER_PG_HOST": ADMIN["host"], "KPIWATCH_DAGSTER_PG_DB": dagster_db})
        del env["KPIWATCH_TARGET"]  # chosen by the flag below
        wh = tmp_path / "wh" / "kpiwatch.duckdb"
        run = kpiwatch(["run", "--target", "postgres", "--data-dir", str(demo_data), "--warehouse", str(wh)], env)
        # Dagster recorded the run, its steps and asset checks in its own Postgres database,
        # and nothing in a local SQLite storage.
        with psycopg.connect(**{**ADMIN, "dbname": dagster_db}) as con:
            runs = con.execute("select pipeline_name, status from runs").fetchall()
            steps = con.execute("select count(*) from event_logs where dagster_event_type = 'STEP_SUCCESS'").fetchone()[0]
            checks = con.execute(
                "select count(*) from event_logs where dagster_event_type = 'ASSET_CHECK_EVALUATION'").fetchone()[0]
        assert runs == [("kpiwatch_all", "SUCCESS")] and steps >= 8 and checks > 0
        assert not (home / "history").exists()
        out = run.stdout
        assert f"warehouse postgresql://postgres@127.0.0.1:5432/{db}" in out
        for needle in ("missed cancer_75_by_jun_2026", "at_risk bus_88_by_mar_2027", "overdue source transport_db",
                       "quarantined 2 × duplicate_key", "mart contract: 8 passed, 0 failed", "Alerts this run: 10 sent"):
            assert needle in out, needle
        assert not wh.exists()  # every table went to Postgres; only local files sit beside the path
        assert (wh.parent / "reports" / "scorecard.html").exists() and (wh.parent / "alerts.jsonl").exists()

        env["KPIWATCH_TARGET"] = "postgres"
        doc = json.loads(kpiwatch(["status", "--warehouse", str(wh), "--format", "json"], env).stdout)
        by_id = {k["kpi_id"]: k for k in doc["kpis"]}
        assert by_id["rtt_18_weeks"]["status"] == "red" and by_id["claimant_count"]["status"] == "amber"
        assert by_id["bus_punctuality"]["data_trust"] == "stale" and by_id["job_placements"]["data_trust"] == "anomalous"

        trail = kpiwatch(["explain", "rtt_18_weeks", "2026-10", "--warehouse", str(wh)], env).stdout
        assert "100 × 9,259 / 11,369 = 81.4408" in trail and "health/returns_2026-10.csv" in trail

        report = tmp_path / "card.html"
        kpiwatch(["report", "--warehouse", str(wh), "--out", str(report)], env)
        assert "Patients waiting under 18 weeks" in report.read_text()
        assert "ledger OK: 1 record(s) verified" in kpiwatch(["verify-ledger", "--warehouse", str(wh)], env).stdout

        # The mart contract ran in Postgres through SQLAlchemy (GX's SQL engine, not a frame).
        with psycopg.connect(**{**ADMIN, "dbname": db}) as con:
            [(result,)] = con.execute("select result_json from quality.gx_validation_results "
                                      "where suite = 'mart_fct_kpi_progress'").fetchall()
            texts = _all_text(con)
        meta = json.loads(result)["meta"]
        assert meta["active_batch_definition"]["datasource_name"] == "kpiwatch_warehouse"
        assert "from catalog.kpis" in meta["batch_spec"]["query"]

        # The password is in no output, file or warehouse text column (the search can find text:
        # the database name is in the run's output and in the stored results).
        files = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
        assert db in out and "mart_fct_kpi_progress" in texts
        for where in (out, run.stderr, files, texts):
            assert SECRET not in where


def _all_text(con) -> str:
    cols = con.execute("""select table_schema, table_name, column_name from information_schema.columns
                          where table_schema not in ('pg_catalog', 'information_schema')
                            and data_type in ('text', 'character varying')""").fetchall()
    return "\n".join(str(v) for s, t, c in cols for (v,) in con.execute(f'select "{c}" from "{s}"."{t}"').fetchall())


def test_unreachable_postgres_is_one_line_and_exit_2(tmp_path, demo_data):
    env = _env({**pg_env("kpiwatch_nowhere"), "KPIWATCH_PG_PORT": "1", "KPIWATCH_PG_PASSWORD": SECRET})
    for args in (["run", "--data-dir", str(demo_data)], ["status"]):
        proc = kpiwatch([*args, "--warehouse", str(tmp_path / "wh.duckdb")], env, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "cannot reach the Postgres warehouse postgresql://postgres@127.0.0.1:1/kpiwatch_nowhere" in proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr and SECRET not in proc.stdout + proc.stderr


def test_unknown_target_is_refused(tmp_path):
    proc = kpiwatch(["--target", "oracle", "status", "--warehouse", str(tmp_path / "wh.duckdb")], _env({}), check=False)
    assert proc.returncode == 2 and "unknown warehouse target 'oracle'" in proc.stderr
    proc = kpiwatch(["status", "--warehouse", str(tmp_path / "wh.duckdb")], _env({"KPIWATCH_TARGET": "mysql"}), check=False)
    assert proc.returncode == 2 and "KPIWATCH_TARGET: unknown warehouse target 'mysql'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_second_run_on_the_same_postgres_warehouse_is_refused_as_busy(tmp_path, demo_data):
    """Another session holding kpiwatch's run lock (a run in progress) makes `kpiwatch run`
    exit 3 with "warehouse busy" before anything lands, as a locked DuckDB file does."""
    from pipelines.warehouse import RUN_LOCK_KEY

    with fresh_database("kpiwatch_busy") as db:
        env = _env(pg_env(db))
        with psycopg.connect(**{**ADMIN, "dbname": db}, autocommit=True) as holder:
            assert holder.execute("select pg_try_advisory_lock(%s)", [RUN_LOCK_KEY]).fetchone()[0]
            proc = kpiwatch(["run", "-q", "--data-dir", str(demo_data), "--warehouse", str(tmp_path / "wh.duckdb")],
                            env, check=False)
            assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
            assert "warehouse busy: another kpiwatch run holds the Postgres warehouse" in proc.stderr
            landed = holder.execute("select count(*) from information_schema.tables where table_schema = 'raw'").fetchone()[0]
            assert landed == 0  # refused before any stage ran
