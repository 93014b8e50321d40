"""Dagster's run and event storage on PostgreSQL (dagster-postgres): `kpiwatch run` with a
DAGSTER_HOME whose dagster.yaml points at Postgres records its run there. Configuration only:
the same code runs on the default SQLite storage (docs/scale.md, "Beyond one machine")."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("dagster_postgres")

PG = dict(host="127.0.0.1", port=5432, user="postgres", dbname="test")
DB = "kpiwatch_dagster_storage_test"

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


@pytest.fixture
def pg_database():
    try:
        admin = psycopg.connect(**PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    with admin:
        admin.execute(f'drop database if exists "{DB}" with (force)')
        admin.execute(f'create database "{DB}"')
    yield DB
    with psycopg.connect(**PG, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{DB}" with (force)')


@pytest.mark.slow
def test_kpiwatch_run_records_its_run_in_postgres_storage(tmp_path, demo_data, pg_database):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {**os.environ, "DAGSTER_HOME": str(home), "KPIWATCH_DAGSTER_PG_USER": PG["user"],
           "KPIWATCH_DAGSTER_PG_PASSWORD": "", "KPIWATCH_DAGSTER_PG_HOST": PG["host"],
           "KPIWATCH_DAGSTER_PG_DB": pg_database}
    kpiwatch = Path(sys.executable).parent / "kpiwatch"
    proc = subprocess.run([str(kpiwatch), "run", "-q", "--data-dir", str(demo_data),
                           "--warehouse", str(tmp_path / "wh" / "kpiwatch.duckdb")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with psycopg.connect(**{**PG, "dbname": pg_database}) as con:
        runs = con.execute("select pipeline_name, status from runs").fetchall()
        events = con.execute("select count(*) from event_logs where dagster_event_type = 'STEP_SUCCESS'").fetchone()[0]
        checks = con.execute("select count(*) from event_logs where dagster_event_type = 'ASSET_CHECK_EVALUATION'").fetchone()[0]
    assert runs == [("kpiwatch_all", "SUCCESS")]
    assert events >= 8 and checks > 0
    # Nothing was written to a local SQLite run storage instead.
    assert not (home / "history").exists()
