"""A source database that goes away mid-ingest (real PostgreSQL at 127.0.0.1:5432): the
backend terminated while the query runs, and the database dropped between runs. The source's
ingest fails with a named error, lands nothing partial, hides the URL's password, does not stop
another department's source, and the next run lands every row exactly once."""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid

import psycopg
import pytest

from pipelines.catalog.loader import load_catalog
from pipelines.ingest.landing import ingest_source
from pipelines.warehouse import connect
from tests.support.catalogs import kpi, write_catalog

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PASSWORD = "pg-Secret-" + uuid.uuid4().hex[:8]  # trust auth ignores it; it must never be shown
AS_OF = dt.date(2026, 11, 15)
ROWS = 46  # 2023-01 .. 2026-10, all before the reporting date


def _admin():
    try:
        return psycopg.connect(ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:  # pragma: no cover - the service runs before every session
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not running: {exc}")


@pytest.fixture
def pg_source(tmp_path):
    """A fresh PostgreSQL database with a KPI table, a catalog reading it (slowly: the query
    sleeps 1 s so it can be interrupted) and a CSV source of another department."""
    db = f"kpiwatch_fault_{uuid.uuid4().hex[:10]}"
    with _admin() as admin:
        admin.execute(f'create database "{db}"')
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}", autocommit=True) as con:
        con.execute("create table kpi_rows (kpi text, month text, org text, value numeric)")
        with con.cursor() as cur:
            cur.executemany("insert into kpi_rows values (%s, %s, %s, %s)",
                            [("homes", f"{2023 + i // 12}-{i % 12 + 1:02d}", "A", 100 + i) for i in range(ROWS)])
    sources = [
        {"id": "pg_returns", "department": "dept", "kind": "sql", "url_env": "KPIWATCH_TEST_PG_URL",
         "query": "select k.* from kpi_rows k cross join (select pg_sleep(1)) s order by k.month",
         "cadence": "monthly", "columns": {"kpi_id": "kpi", "period": "month", "org_id": "org", "value": "value"}},
        {"id": "other_csv", "department": "other", "kind": "csv", "path": "*.csv", "cadence": "monthly",
         "columns": {"kpi_id": "kpi", "period": "month", "value": "value"}},
    ]
    departments = [{"id": "dept", "name": "Dept", "channel": "#dept"}, {"id": "other", "name": "Other", "channel": "#other"}]
    catalog = load_catalog(write_catalog(tmp_path / "catalog", sources,
                                         [kpi("homes", "pg_returns"), kpi("jobs", "other_csv", department="other")],
                                         departments=departments))
    data = tmp_path / "data"
    data.mkdir()
    (data / "jobs.csv").write_text("kpi,month,value\njobs,2026-09,5\njobs,2026-10,6\n")
    env = {"KPIWATCH_TEST_PG_URL": f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:5432/{db}"}
    yield {"db": db, "catalog": catalog, "data": data, "env": env, "wh": tmp_path / "wh.duckdb"}
    with _admin() as admin:
        admin.execute(f'drop database if exists "{db}" with (force)')


def _ingest_all(s, run_id: str):
    with connect(s["wh"]) as con:
        reports = {sid: ingest_source(con, s["catalog"], sid, s["data"], AS_OF, run_id, environ=s["env"])
                   for sid in ("pg_returns", "other_csv")}
        counts = dict(con.execute("select source_id, count(*) from raw.observations group by 1").fetchall())
        dups = con.execute("""select count(*) - count(distinct (kpi_id, org_id, period)) from raw.observations""").fetchone()[0]
    return reports, counts, dups


def _terminate_when_running(db: str, done: threading.Event, killed: list) -> None:
    with _admin() as admin:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not done.is_set():
            pids = [r[0] for r in admin.execute(
                # The source is read through a server-side cursor: the statement runs as its FETCH.
                "select pid from pg_stat_activity where datname = %s and state = 'active' "
                "and (query like %s or query ilike %s)", [db, "%pg_sleep%", "fetch%"]).fetchall()]
            if pids:
                time.sleep(0.3)  # the query is running and has not returned a row yet
                killed += [admin.execute("select pg_terminate_backend(%s)", [p]).fetchone()[0] for p in pids]
                return
            time.sleep(0.05)


def test_backend_terminated_mid_query_lands_nothing_then_rerun_lands_all_once(pg_source):
    done, killed = threading.Event(), []
    killer = threading.Thread(target=_terminate_when_running, args=(pg_source["db"], done, killed))
    killer.start()
    try:
        reports, counts, _ = _ingest_all(pg_source, "run-killed")
    finally:
        done.set()
        killer.join()
    assert killed == [True], "the query was not caught running"
    pg = reports["pg_returns"]
    assert pg.batches == [] and counts.get("pg_returns") is None  # nothing partial landed
    assert pg.error.startswith("source pg_returns: query failed: ") and "terminating connection" in pg.error, pg.error
    assert PASSWORD not in pg.error
    # The other department's source is not held up.
    assert counts["other_csv"] == 2 and reports["other_csv"].batches[0].rows_accepted == 2

    reports, counts, dups = _ingest_all(pg_source, "run-again")
    assert reports["pg_returns"].error is None and counts["pg_returns"] == ROWS and dups == 0
    assert reports["other_csv"].batches == []  # already landed: not doubled
    reports, counts, dups = _ingest_all(pg_source, "run-third")
    assert reports["pg_returns"].batches == [] and counts == {"pg_returns": ROWS, "other_csv": 2} and dups == 0
    print(f"\n[source db] terminated mid-query: rows in {ROWS}, landed {counts['pg_returns']}, lost 0, duplicated {dups}")


def test_database_dropped_between_runs_is_a_named_error_and_loses_nothing(pg_source):
    reports, counts, _ = _ingest_all(pg_source, "run-1")
    assert counts == {"pg_returns": ROWS, "other_csv": 2}
    with _admin() as admin:
        admin.execute(f'drop database "{pg_source["db"]}" with (force)')
    (pg_source["data"] / "jobs_nov.csv").write_text("kpi,month,value\njobs,2026-11,7\n")
    reports, counts, _ = _ingest_all(pg_source, "run-2")
    err = reports["pg_returns"].error
    assert err and "source pg_returns" in err and f'database "{pg_source["db"]}" does not exist' in err, err
    assert PASSWORD not in err and "postgresql+psycopg://" not in err
    assert counts == {"pg_returns": ROWS, "other_csv": 3}  # what was landed stays; the other source goes on


def test_catalog_table_names_are_quoted_identifiers(pg_source, tmp_path):
    """A table name from the catalog is validated (tests/badinput: no quotes, no SQL) and quoted:
    a table called `order` (a reserved word) is read, not parsed as SQL."""
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={pg_source['db']}", autocommit=True) as con:
        con.execute('create table "order" as select * from kpi_rows')
    src = {"id": "pg_order", "department": "dept", "kind": "sql", "url_env": "KPIWATCH_TEST_PG_URL", "table": "order",
           "cadence": "monthly", "columns": {"kpi_id": "kpi", "period": "month", "org_id": "org", "value": "value"}}
    catalog = load_catalog(write_catalog(tmp_path / "cat2", [src], [kpi("homes", "pg_order")]))
    with connect(tmp_path / "wh2.duckdb") as con:
        report = ingest_source(con, catalog, "pg_order", pg_source["data"], AS_OF, "run-q", environ=pg_source["env"])
    assert report.error is None and report.batches[0].rows_accepted == ROWS
    with connect(tmp_path / "wh2.duckdb", read_only=True) as con:
        [(query,)] = con.execute("select source_query from raw.batches").fetchall()
    assert 'FROM "order"' in query, query
