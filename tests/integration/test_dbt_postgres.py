"""The dbt project on the Postgres target gives the same marts as on DuckDB.

Two real runs of the asset graph (tests/support/quality_runs.py) build a DuckDB warehouse; its input schemas (raw,
catalog, quality) are copied into a fresh PostgreSQL database, where the real `dbt build
--target postgres` runs (models, data tests, unit tests). Every mart table must then equal the
DuckDB one row for row: floats to 1e-9 relative, everything else (dates, strings, booleans,
integers, and the Python type of each value) exactly.

Then one more batch lands in raw on both engines (a resubmission of an existing batch, one
figure changed) and a second, incremental build runs on each: int_observations__latest_revision
must pick the new revision on Postgres, incrementally, and the marts must still agree.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from tests.support import pg

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO / "dbt_project"
BIN = Path(sys.executable).parent
INPUT_SCHEMAS = ("raw", "catalog", "quality")
RESUBMITTED_BATCH_SOURCE = "employment_return"
RESTATED_KPI = "claimant_count"


# --- running -------------------------------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_", "DAGSTER_HOME"))}
    return {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **extra}


def dbt_build(work: Path, target: str, env: dict[str, str]) -> list[dict]:
    """Real `dbt build` on `target`; its own target/log paths so the project's manifest is
    left alone. Returns run_results' results after asserting every node passed."""
    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(BIN / "dbt"), "build", "--target", target,
         "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
         "--target-path", str(work / "target"), "--log-path", str(work / "logs")],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    results = json.loads((work / "target" / "run_results.json").read_text())["results"]
    failing = {r["unique_id"]: r["status"] for r in results if r["status"] not in ("success", "pass")}
    assert not failing, failing
    return results


def duck_query(path: Path, sql: str, params=None) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def pg_query(dbname: str, sql: str, params=None) -> tuple[list[str], list[tuple]]:
    import psycopg

    with psycopg.connect(**{**pg.ADMIN, "dbname": dbname}) as con:
        cur = con.execute(sql, params)
        return [d[0] for d in cur.description], cur.fetchall()


# --- comparing -----------------------------------------------------------------------------

def _sort_key(row: tuple) -> tuple:
    # exact columns first (the tables' keys are strings and dates), floats rounded last
    exact = tuple((v is None, v) for v in row if not isinstance(v, float))
    floats = tuple(round(v, 6) for v in row if isinstance(v, float))
    return exact + floats


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def differences(table: str, duck: tuple[list[str], list[tuple]], post: tuple[list[str], list[tuple]]) -> list[str]:
    (duck_cols, duck_rows), (pg_cols, pg_rows) = duck, post
    if duck_cols != pg_cols:
        return [f"{table}: columns {duck_cols} (duckdb) vs {pg_cols} (postgres)"]
    if len(duck_rows) != len(pg_rows):
        return [f"{table}: {len(duck_rows)} rows (duckdb) vs {len(pg_rows)} (postgres)"]
    found = []
    for d, p in zip(sorted(duck_rows, key=_sort_key), sorted(pg_rows, key=_sort_key)):
        bad = {c: (x, y) for c, x, y in zip(duck_cols, d, p) if not _same(x, y)}
        if bad:
            found.append(f"{table}: {bad} in duckdb row {d}")
    return found


def mart_tables(duck_path: Path) -> list[str]:
    _, rows = duck_query(duck_path, "select table_name from information_schema.tables "
                                    "where table_schema = 'marts' order by 1")
    return [r[0] for r in rows]


def assert_marts_equal(duck_path: Path, dbname: str) -> dict[str, int]:
    tables = mart_tables(duck_path)
    assert len(tables) == 9, tables  # with fct_kpi_standard_orgs
    problems, counts = [], {}
    for table in tables:
        sql = f'select * from marts."{table}"'
        duck = duck_query(duck_path, sql)
        problems += differences(table, duck, pg_query(dbname, sql))
        counts[table] = len(duck[1])
    assert not problems, "\n".join(problems[:40])
    return counts


def test_comparison_sees_a_changed_value():
    rows = (["kpi_id", "period", "actual", "status"], [("a", 1, 1.0, "red"), ("b", 1, 2.0, "amber")])
    assert not differences("t", rows, (rows[0], list(reversed(rows[1]))))
    assert not differences("t", rows, (rows[0], [("a", 1, 1.0 + 1e-12, "red"), ("b", 1, 2.0, "amber")]))
    for changed in ([("a", 1, 1.0, "red"), ("b", 1, 2.001, "amber")],
                    [("a", 1, 1.0, "red"), ("b", 1, 2.0, "green")],
                    [("a", 1, 1.0, "red"), ("b", 1, 2, "amber")],  # integer where duckdb has a double
                    [("a", 1, 1.0, "red")]):
        assert differences("t", rows, (rows[0], changed))


# --- the test ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def duck_warehouse(tmp_path_factory) -> Path:
    """A DuckDB warehouse built by two real runs of the asset graph (the session's shared
    quality runs: the demo, then a schema change and an outlier)."""
    from tests.support.quality_runs import quality_runs

    return quality_runs(tmp_path_factory)["wh"]


def resubmission(duck_path: Path) -> tuple[dict, list[dict], tuple]:
    """A copy of the employment batch under a new batch id, loaded a day after everything
    else, with the claimant count's latest figure changed: (batch row, observation rows,
    (kpi_id, org_id, period, new value))."""
    cols, rows = duck_query(duck_path, "select * from raw.batches where source_id = ? order by loaded_at desc",
                            [RESUBMITTED_BATCH_SOURCE])
    assert rows
    batch = dict(zip(cols, rows[0]))  # the source's latest batch
    _, [(latest_load,)] = duck_query(duck_path, "select max(loaded_at) from raw.observations")
    new_id, loaded_at = batch["batch_id"] + "-resubmitted", latest_load + timedelta(days=1)
    cols, rows = duck_query(duck_path, "select * from raw.observations where batch_id = ? order by row_number",
                            [batch["batch_id"]])
    observations = [{**dict(zip(cols, r)), "batch_id": new_id, "loaded_at": loaded_at} for r in rows]
    restated = max((o for o in observations if o["kpi_id"] == RESTATED_KPI), key=lambda o: o["period"])
    restated["value"] = restated["value"] + 1000
    return ({**batch, "batch_id": new_id, "loaded_at": loaded_at}, observations,
            (restated["kpi_id"], restated["org_id"] or "ALL", restated["period"], restated["value"]))


def insert_rows(execute, table: str, rows: list[dict], placeholder: str) -> None:
    cols = list(rows[0])
    sql = (f"insert into {table} ({', '.join(cols)}) "
           f"values ({', '.join([placeholder] * len(cols))})")
    for row in rows:
        execute(sql, [row[c] for c in cols])


def test_postgres_marts_equal_duckdb_marts_then_incremental_build(duck_warehouse, tmp_path):
    # The DuckDB marts carry the runs' planted statuses, so an empty or all-grey comparison
    # cannot pass unnoticed.
    _, latest = duck_query(duck_warehouse, "select status, count(*) from marts.fct_kpi_progress "
                                           "where is_latest group by status")
    statuses = dict(latest)
    assert statuses.get("red", 0) >= 1 and statuses.get("green", 0) >= 1, statuses

    with pg.fresh_database("kpiwatch_dbt") as dbname:
        copied = pg.copy_duckdb_to_pg(duck_warehouse, dbname, INPUT_SCHEMAS)
        assert copied["raw.observations"] > 0 and copied["catalog.kpis"] > 0
        pg_env = clean_env(**pg.pg_env(dbname))

        # 1. a first build on Postgres: every model, data test and unit test passes ...
        first = dbt_build(tmp_path / "pg-1", "postgres", pg_env)
        kinds = [r["unique_id"].split(".")[0] for r in first]
        assert kinds.count("model") == 30 and kinds.count("unit_test") >= 15 and kinds.count("test") >= 100

        # ... and the marts are the DuckDB run's, row for row
        counts = assert_marts_equal(duck_warehouse, dbname)
        assert counts["fct_kpi_progress"] > 100 and counts["dim_kpis"] == 13

        # 2. a resubmission lands on both engines; a second build runs incrementally
        duck_copy = tmp_path / "duck" / "kpiwatch.duckdb"
        duck_copy.parent.mkdir()
        shutil.copy(duck_warehouse, duck_copy)
        batch, observations, (kpi_id, org_id, period, new_value) = resubmission(duck_copy)
        con = duckdb.connect(str(duck_copy))
        try:
            insert_rows(con.execute, "raw.batches", [batch], "?")
            insert_rows(con.execute, "raw.observations", observations, "?")
        finally:
            con.close()
        import psycopg

        with psycopg.connect(**{**pg.ADMIN, "dbname": dbname}) as pcon:
            insert_rows(pcon.execute, "raw.batches", [batch], "%s")
            insert_rows(pcon.execute, "raw.observations", observations, "%s")

        count_sql = "select count(*) from intermediate.int_observations__latest_revision"
        _, [(keys_before,)] = pg_query(dbname, count_sql)
        second = dbt_build(tmp_path / "pg-2", "postgres", pg_env)
        latest_revision = next(r for r in second if r["unique_id"].endswith(".int_observations__latest_revision"))
        assert "touched as" in latest_revision["compiled_code"]  # the incremental branch ran
        dbt_build(tmp_path / "duck-2", "duckdb", clean_env(KPIWATCH_WAREHOUSE=str(duck_copy)))

        key_sql = ("select value, batch_id, revisions from intermediate.int_observations__latest_revision "
                   "where kpi_id = {p} and org_id = {p} and period = {p}")
        _, pg_latest = pg_query(dbname, key_sql.format(p="%s"), [kpi_id, org_id, period])
        assert pg_latest == [(new_value, batch["batch_id"], 2)]
        # every key of the resubmitted batch now comes from it, replaced rather than added
        _, pg_counts = pg_query(dbname, "select count(*), count(*) filter (where batch_id = %s) "
                                        "from intermediate.int_observations__latest_revision", [batch["batch_id"]])
        assert pg_counts == [(keys_before, len(observations))]
        _, restatements = pg_query(dbname, "select kpi_id, period, revised_value, revising_batch_id "
                                           "from marts.fct_kpi_restatements")
        assert restatements == [(kpi_id, period, new_value, batch["batch_id"])]

        _, duck_latest = duck_query(duck_copy, key_sql.format(p="?"), [kpi_id, org_id, period])
        assert duck_latest == pg_latest
        assert_marts_equal(duck_copy, dbname)
