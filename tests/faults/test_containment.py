"""One bad file never stops the others (issue 19), through the real `kpiwatch run` of the demo
plus poisoned files and the source kinds that used to fail every run:

- health/: a CSV whose stray quote makes one field longer than Python's csv field limit (sorted
  before the demo's files, so they must still land after it), and a second copy of a demo file;
- employment/: two workbooks whose Value cell holds an integer too large for a float (400 digits)
  and one over Python's 4,300-digit int conversion limit (again sorted before the real return);
- web: a `kind: http` source served by a local HTTP server;
- pgq / maria: `kind: sql` sources with a parameterised `query:` on the real PostgreSQL
  (127.0.0.1:5432) and MariaDB (127.0.0.1:3306).

The run completes (exit 0), every poisoned file is named with its cause on one line, health and
employment are blocked from publication and every other department publishes, and rows in =
landed + quarantined (a refused file is one input unit). A file that vanishes between listing
and reading is contained the same way (ingest layer, real DuckDB).
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
import zipfile
from pathlib import Path

import psycopg
import pymysql
import pytest
import yaml

from pipelines.config import DEFAULT_CATALOG
from tests.faults.support import clean_env, kpiwatch, landing_counts, query
from tests.support.catalogs import kpi
from tests.support.http_server import HttpServer, json_route

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MONTHS = [f"{2025 + (m + 9) // 12}-{(m + 9) % 12 + 1:02d}" for m in range(13)]  # 2025-10 .. 2026-10
STRAY = "health/2026-00-stray-quote.csv"
COPY = "health/zz-copy-of-returns_2026-10.csv"
BIG = {"employment/a-big-400-digits.xlsx": 400, "employment/a-big-5000-digits.xlsx": 5000}
DEMO = {"rows_in": 957, "landed": 952, "quarantined": 5}  # the demo's four files (docs/faults.md)
WEB_ROWS, PG_ROWS, MARIA_ROWS = 26, 13, 13


def _poisoned_workbook(src: Path, dst: Path, digits: int) -> None:
    """The demo return with its first Value cell replaced by a `digits`-digit integer."""
    from openpyxl import load_workbook

    wb = load_workbook(src)
    ws = wb["KPI return"]
    ws.cell(row=4, column=[c.value for c in ws[3]].index("Value") + 1, value=123454321)
    wb.save(dst)
    with zipfile.ZipFile(dst) as z:
        items = {n: z.read(n) for n in z.namelist()}
    sheet = next(n for n in items if n.startswith("xl/worksheets/sheet"))
    assert b"<v>123454321</v>" in items[sheet]
    items[sheet] = items[sheet].replace(b"<v>123454321</v>", b"<v>" + b"9" * digits + b"</v>")
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in items.items():
            z.writestr(n, b)


def _catalog(dst: Path, web_url: str) -> None:
    shutil.copytree(DEFAULT_CATALOG, dst)

    def edit(name, fn):
        doc = yaml.safe_load((dst / name).read_text())
        fn(doc)
        (dst / name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))

    cols = {"kpi_id": "kpi", "period": "month", "org_id": "org", "value": "value"}
    common = {"cadence": "monthly", "lag_days": 14, "columns": cols}
    edit("departments.yml", lambda d: d["departments"].extend(
        {"id": i, "name": i.title(), "channel": f"#{i}"} for i in ("web", "pgq", "maria")))
    edit("sources.yml", lambda d: d["sources"].extend([
        {"id": "web_api", "department": "web", "kind": "http", "url": web_url, "format": "json",
         "records_path": "data", "timeout_seconds": 5, "retries": 0, **common},
        {"id": "pg_query", "department": "pgq", "kind": "sql", "url_env": "KPIWATCH_TEST_PGQ_URL",
         "query": "select kpi, month, org, value from kpi_rows where region = :region order by month",
         "params": {"region": "north"}, **common},
        {"id": "maria_query", "department": "maria", "kind": "sql", "url_env": "KPIWATCH_TEST_MARIA_URL",
         "query": "select kpi, month, org, value from {table} where region = :region order by month",
         "params": {"region": "north"}, **common},
    ]))
    edit("kpis.yml", lambda d: d["kpis"].extend([
        kpi("web_visits", "web_api", "web"), kpi("pg_cases", "pg_query", "pgq"), kpi("maria_cases", "maria_query", "maria")]))


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory, demo_data):
    base = tmp_path_factory.mktemp("containment")
    data, catalog, wh = base / "data", base / "catalog", base / "wh" / "kpiwatch.duckdb"
    shutil.copytree(demo_data, data)
    header = (data / "health" / "returns_2026-10.csv").read_text().splitlines()[0]
    # 720 KB: one stray quote opens a field that runs to the end of the file.
    (data / STRAY).write_text(header + '\ncancer_62_day,"2026-01,P1,1,,\n' + "x" * 720_000 + "\n")
    shutil.copy(data / "health" / "returns_2026-10.csv", data / COPY)
    for name, digits in BIG.items():
        _poisoned_workbook(data / "employment" / "employment_return_2026-10.xlsx", data / name, digits)

    db, maria_table = f"kpiwatch_q_{uuid.uuid4().hex[:10]}", f"kpiwatch_q_{uuid.uuid4().hex[:10]}"
    rows = [("pg_cases", m, "A", 50 + i, "north") for i, m in enumerate(MONTHS)] + \
           [("pg_cases", m, "B", 9, "south") for m in MONTHS[:5]]
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'create database "{db}"')
    maria = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database="test", autocommit=True)
    try:
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}", autocommit=True) as con:
            con.execute("create table kpi_rows (kpi text, month text, org text, value numeric, region text)")
            con.cursor().executemany("insert into kpi_rows values (%s, %s, %s, %s, %s)", rows)
        with maria.cursor() as cur:
            cur.execute(f"create table {maria_table} (kpi varchar(40), month varchar(7), org varchar(10), "
                        "value decimal(12, 2), region varchar(10))")
            cur.executemany(f"insert into {maria_table} values (%s, %s, %s, %s, %s)",
                            [("maria_cases", *r[1:]) for r in rows])
        web = {"data": [{"kpi": "web_visits", "month": m, "org": org, "value": 40 + i}
                        for i, m in enumerate(MONTHS) for org in ("X", "Y")]}
        with HttpServer({"/api/visits.json": json_route(web)}) as srv:
            _catalog(catalog, srv.url("/api/visits.json"))
            src = (catalog / "sources.yml").read_text().replace("{table}", maria_table)
            (catalog / "sources.yml").write_text(src)
            env = clean_env(KPIWATCH_TEST_PGQ_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
                            KPIWATCH_TEST_MARIA_URL="mysql+pymysql://root@127.0.0.1:3306/test")
            run = kpiwatch("run", "--catalog", str(catalog), "--data-dir", str(data), "--warehouse", str(wh), env=env)
            web_hits = list(srv.hits)
        yield {"run": run, "wh": wh, "data": data, "web_hits": web_hits}
    finally:
        with maria.cursor() as cur:
            cur.execute(f"drop table if exists {maria_table}")
        maria.close()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{db}" with (force)')


@pytest.mark.slow
def test_the_run_completes_and_names_every_poisoned_file_on_one_line(poisoned):
    run = poisoned["run"]
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "DagsterExecutionStepExecutionError" not in out
    lines = out.splitlines()

    def line_with(*parts):
        return next((ln for ln in lines if all(p in ln for p in parts)), None)

    assert line_with("ingest__health_returns", STRAY, "refused (unreadable_source)",
                     "a field is longer than 131,072 characters"), out[-4000:]
    assert line_with("ingest__employment_return", "a-big-5000-digits.xlsx", "refused",
                     "a number with more than 4,300 digits"), out[-4000:]
    assert line_with("ingest__employment_return", "a-big-400-digits.xlsx", "refused", "too large"), out[-4000:]
    assert line_with("ingest__health_returns", COPY, "identical to health/returns_2026-10.csv"), out[-4000:]
    assert re.search(r"run \S+ succeeded", out)


@pytest.mark.slow
def test_rows_in_equal_landed_plus_quarantined_and_later_files_land(poisoned):
    c = landing_counts(poisoned["wh"])
    refused = 1 + len(BIG)  # each refused file is one input unit
    new = WEB_ROWS + PG_ROWS + MARIA_ROWS
    assert c["rows_in"] == DEMO["rows_in"] + refused + new
    assert c["landed"] == c["observations"] == c["distinct_observations"] == DEMO["landed"] + new
    assert c["quarantined"] == c["quarantine_rows"] == DEMO["quarantined"] + refused
    assert c["rows_in"] == c["landed"] + c["quarantined"]
    files = dict(query(poisoned["wh"], "select source_file, rows_accepted from raw.batches where source_file is not null"))
    # The files after the poisoned ones (by name) landed in the same run; the copy added nothing.
    assert files["health/returns_2026-10.csv"] > 0 and files["employment/employment_return_2026-10.xlsx"] > 0
    assert files[STRAY] == 0 and all(files[n] == 0 for n in BIG) and COPY not in files
    reasons = dict(query(poisoned["wh"], "select b.source_file, q.reason from raw.quarantine q "
                         "join raw.batches b using (batch_id) where q.row_number is null"))
    assert reasons[STRAY] == "unreadable_source" and all(reasons[n] == "unreadable_source" for n in BIG)


@pytest.mark.slow
def test_only_the_poisoned_departments_are_blocked(poisoned):
    wh = poisoned["wh"]
    decisions = dict(query(wh, "select department_id, published from publish.decisions"))
    assert decisions == {"health": False, "employment": False, "transport": True, "web": True, "pgq": True,
                         "maria": True}
    [(reason,)] = query(wh, "select reason from publish.decisions where department_id = 'health'")
    assert STRAY in reason and "131,072" in reason
    # The rest of the graph ran: marts, alerts, both reports and the ledger.
    assert query(wh, "select count(*) from ledger.runs") == [(1,)]
    assert query(wh, "select count(distinct department_id) from marts.fct_kpi_progress")[0][0] == 6
    reports = poisoned["wh"].parent / "reports"
    assert (reports / "scorecard.html").exists() and (reports / "audit-report.html").exists()


@pytest.mark.slow
def test_http_and_sql_query_sources_run_end_to_end(poisoned):
    wh = poisoned["wh"]
    landed = dict(query(wh, "select source_id, count(*) from raw.observations group by 1"))
    assert landed["web_api"] == WEB_ROWS and landed["pg_query"] == PG_ROWS and landed["maria_query"] == MARIA_ROWS
    queries = dict(query(wh, "select source_id, source_query from raw.batches where source_file is null"))
    assert queries["web_api"].startswith("GET http://127.0.0.1:") and "/api/visits.json" in queries["web_api"]
    assert "where region = " in queries["pg_query"] and "where region = " in queries["maria_query"]
    locations = dict(query(wh, "select source_id, location from catalog.sources"))
    assert locations["web_api"].endswith("/api/visits.json")
    assert locations["pg_query"].startswith("$KPIWATCH_TEST_PGQ_URL query select kpi, month")
    assert len(poisoned["web_hits"]) == 1
    status = dict(query(wh, "select kpi_id, status from marts.fct_kpi_progress where is_latest"))
    assert {"web_visits", "pg_cases", "maria_cases"} <= status.keys()


def test_a_file_removed_between_listing_and_reading_is_named_and_read_next_run(tmp_path, demo_data, monkeypatch):
    from pipelines.catalog.loader import load_catalog
    from pipelines.ingest import landing
    from pipelines.warehouse import connect

    data = tmp_path / "data"
    shutil.copytree(demo_data / "health", data / "health")
    ghost = data / "health" / "returns_2026-00.csv"
    real_listing = landing.source_files
    monkeypatch.setattr(landing, "source_files", lambda src, d: sorted(real_listing(src, d) + [ghost]))
    catalog = load_catalog(DEFAULT_CATALOG)
    with connect(tmp_path / "wh.duckdb") as con:
        report = landing.ingest_source(con, catalog, "health_returns", data, dt.date(2026, 11, 15), "run-1")
        checks = con.execute("select check_name, success, observed from quality.check_results "
                             "where batch_id like 'source-error@%'").fetchall()
    assert report.failures == ["health/returns_2026-00.csv: the file was removed before it could be read"]
    assert [b.source_file for b in report.batches] == ["health/returns_2023-10_to_2026-09.csv",
                                                       "health/returns_2026-10.csv"]
    assert checks == [("source_readable", False, report.failures[0])]
    # Back for the next run: read then, once.
    ghost.write_text((data / "health" / "returns_2026-10.csv").read_text().replace("2026-10", "2026-00"))
    with connect(tmp_path / "wh.duckdb") as con:
        again = landing.ingest_source(con, catalog, "health_returns", data, dt.date(2026, 11, 15), "run-2")
    assert [b.source_file for b in again.batches] == ["health/returns_2026-00.csv"] and not again.failures


def test_failure_texts_are_one_printable_line():
    from pipelines.ingest.landing import describe_failure
    from pipelines.text import one_line

    assert one_line("a\nb\x1b[31mc") == "a\\nb\\x1b[31mc"
    assert len(one_line("x" * 5000)) == 300
    assert describe_failure(ValueError("boom\nsecond line")) == "ValueError: boom"
