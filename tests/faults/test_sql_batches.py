"""A large sql source lands in batches of bounded size (real PostgreSQL at 127.0.0.1:5432, real
DuckDB, each ingest in its own process under GNU time):

- a run killed (SIGKILL) after its third batch keeps those three; the source table is then
  rewritten in place (half its rows updated, so PostgreSQL returns them in another physical order),
  and the next run lands exactly the rest: the result is read in a fixed order, so the same
  batches come back with the same identities;
- rows in = landed + quarantined (a few unparseable values are quarantined, by name);
- a third run lands nothing;
- peak memory follows the batch, not the source: the same source read as one batch peaks
  well above the batched run.
"""
from __future__ import annotations

import os
import sys
import uuid

import psycopg
import pytest

from pipelines.warehouse import connect
from tests.faults.bombs import peak_rss_kb
from tests.support.catalogs import kpi, write_catalog

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
ROWS = 60_000
BATCH = 10_000
BAD = 30  # values that do not parse: quarantined as unparseable_number

CHILD = r"""
import datetime as dt, os, signal, sys
from pipelines.catalog.loader import load_catalog
from pipelines.ingest import landing
from pipelines.warehouse import connect

catalog_dir, data_dir, wh, run_id, kill_after = sys.argv[1:6]
kill_after = int(kill_after)
real_land, landed = landing._land, []

def land(*a, **kw):
    out = real_land(*a, **kw)
    landed.append(out)
    if len(landed) == kill_after:  # killed right after this batch was committed
        os.kill(os.getpid(), signal.SIGKILL)
    return out

landing._land = land
catalog = load_catalog(catalog_dir)
with connect(wh) as con:
    report = landing.ingest_source(con, catalog, "big_pg", data_dir, dt.date(2026, 11, 15), run_id)
print(report.error or "ok", len(report.batches), report.rows_in, report.rows_accepted, report.rows_quarantined)
"""


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    base = tmp_path_factory.mktemp("sqlbatches")
    db = f"kpiwatch_big_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'create database "{db}"')
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={db}"
    with psycopg.connect(dsn, autocommit=True) as con:
        # 2,000 organisations x 30 months, one row each; BAD of them with a value that does not parse.
        con.execute("create table kpi_rows (kpi text, month text, org text, value text)")
        con.execute(f"""insert into kpi_rows
                        select 'homes', to_char(date '2019-01-01' + (i / 2000) * interval '1 month', 'YYYY-MM'),
                               'O' || mod(i, 2000), case when mod(i, {ROWS // BAD}) = 7 then 'n/a?' else mod(i, 97)::text end
                        from generate_series(0, {ROWS - 1}) i""")
    common = {"department": "dept", "kind": "sql", "url_env": "KPIWATCH_TEST_BIG_URL", "table": "kpi_rows",
              "cadence": "monthly", "fetch_rows": 2000,
              "columns": {"kpi_id": "kpi", "period": "month", "org_id": "org", "value": "value"}}
    catalogs = {}
    for name, batch in (("batched", BATCH), ("whole", ROWS)):
        catalogs[name] = write_catalog(base / name, [{"id": "big_pg", "batch_rows": batch, **common}],
                                       [kpi("homes", "big_pg")])
    data = base / "data"
    data.mkdir()
    env = {"KPIWATCH_TEST_BIG_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"}
    yield {"dsn": dsn, "catalogs": catalogs, "data": data, "env": env, "base": base}
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{db}" with (force)')


def _ingest(s, catalog: str, wh, run_id: str, kill_after: int = 0):
    from tests.conftest import PROJECT_ROOT

    env = {**os.environ, **s["env"]}
    return peak_rss_kb([sys.executable, "-c", CHILD, str(s["catalogs"][catalog]), str(s["data"]), str(wh), run_id,
                        str(kill_after)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _counts(wh):
    with connect(wh, read_only=True) as con:
        return con.execute("""select (select count(*) from raw.batches), (select sum(rows_in) from raw.batches),
                                     (select count(*) from raw.observations), (select count(*) from raw.quarantine),
                                     (select count(*) - count(distinct (org_id, period)) from raw.observations)""").fetchone()


@pytest.mark.slow
def test_a_large_sql_source_lands_in_bounded_batches_and_resumes_without_doubling(big_source):
    s, wh = big_source, big_source["base"] / "batched.duckdb"
    killed, _ = _ingest(s, "batched", wh, "run-killed", kill_after=3)
    assert killed.returncode == 128 + 9, killed.stderr[-2000:]  # SIGKILL, as GNU time reports it
    assert _counts(wh)[0] == 3  # three batches committed before the kill
    with psycopg.connect(s["dsn"], autocommit=True) as con:
        # Half the rows rewritten (same values): PostgreSQL now returns them in another physical order.
        con.execute("update kpi_rows set org = org where org like 'O1%'")
    again, peak_batched = _ingest(s, "batched", wh, "run-again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.split()[:2] == ["ok", str(ROWS // BATCH - 3)], again.stdout
    batches, rows_in, landed, quarantined, doubled = _counts(wh)
    assert batches == ROWS // BATCH and rows_in == ROWS == landed + quarantined and doubled == 0
    assert quarantined == BAD
    with connect(wh, read_only=True) as con:
        assert con.execute("select distinct reason from raw.quarantine").fetchall() == [("unparseable_number",)]
        shown = [r[0] for r in con.execute("select source_query from raw.batches order by loaded_at").fetchall()]
    assert shown[0].endswith("-- rows 1-10,000 of the ordered result") and "ORDER BY 1, 2, 3, 4" in shown[0], shown[0]
    third, _ = _ingest(s, "batched", wh, "run-third")
    assert third.stdout.split()[:2] == ["ok", "0"] and _counts(wh)[:3] == (batches, rows_in, landed)

    whole, peak_whole = _ingest(s, "whole", s["base"] / "whole.duckdb", "run-whole")
    assert whole.returncode == 0 and whole.stdout.split()[:2] == ["ok", "1"], whole.stdout + whole.stderr[-2000:]
    print(f"\n[sql batches] {ROWS:,} rows: peak RSS {peak_batched / 1024:.0f} MB in batches of {BATCH:,}, "
          f"{peak_whole / 1024:.0f} MB as one batch")
    # The whole result held at once costs about 1.9 KB a row; batches of a sixth of it, far less.
    assert peak_batched < peak_whole - 40 * 1024, (peak_batched, peak_whole)


def test_a_watermark_value_is_never_split_between_batches(tmp_path):
    # The next run reads above the last landed watermark: a value split over two batches, with
    # the run killed between them, would lose the rest of it.
    import sqlite3

    from pipelines.ingest.sql import read_sql_batches

    with sqlite3.connect(tmp_path / "src.sqlite") as con:
        con.execute("create table t (kpi text, month text, v int, x int)")
        con.executemany("insert into t values (?, ?, ?, ?)", [("k", f"2020-{i % 12 + 1:02d}", i, i % 3) for i in range(25)])
    src = {"id": "s", "kind": "sql", "sqlite_path": "src.sqlite", "query": "select * from t where v >= :lo;",
           "params": {"lo": 0}, "watermark_column": "x", "batch_rows": 10}
    batches = list(read_sql_batches(src, tmp_path, {}, set()))
    assert [(len(b.records), b.watermark) for b in batches] == [(17, "1"), (8, "2")]  # x=0: 9 rows, x=1: 8, x=2: 8
    assert batches[1].query.endswith("-- rows 18-25 of the ordered result")
    # Resumed above the first batch's watermark: exactly the second batch's rows.
    [rest] = read_sql_batches(src, tmp_path, {}, set(), watermark="1")
    assert rest.records == batches[1].records
    # Without a watermark: batches of exactly 10, the same ones on every read.
    del src["watermark_column"]
    first = [(b.sha256, len(b.records)) for b in read_sql_batches(src, tmp_path, {}, set())]
    assert [n for _, n in first] == [10, 10, 5] and first == [(b.sha256, len(b.records)) for b in
                                                              read_sql_batches(src, tmp_path, {}, set())]
    assert list(read_sql_batches(src, tmp_path, {}, {sha for sha, _ in first})) == []
