"""One bad file never stops the others (issue 19), through the real `kpiwatch run` of the demo
plus poisoned files and the source kinds that used to fail every run:

- health/: a CSV whose stray quote makes one field longer than Python's csv field limit (sorted
  before the demo's files, so they must still land after it), and a second copy of a demo file;
- employment/: two workbooks whose Value cell holds an integer too large for a float (400 digits:
  that row is quarantined, the rest land) and one over Python's 4,300-digit int conversion limit
  (refused whole; both sorted before the real return);
- web: a `kind: http` source served by a local HTTP server;
- pgq / maria: `kind: sql` sources with a parameterised `query:` on the real PostgreSQL
  (127.0.0.1:5432) and MariaDB (127.0.0.1:3306);
- bounds: a workbook bomb in employment/ (65 MB of sheet XML in a 100 KB file, over the source's
  `max_uncompressed_mb: 20`), http sources with an endless body (`max_response_mb: 2`), a body
  dripping a byte a second (`timeout_seconds: 2`), a redirect to another port (an "internal"
  server, never reached), and a PostgreSQL table locked for the whole run
  (`statement_timeout_seconds: 2`); a web row dated 1900-01 (period_out_of_range).

The run completes (exit 0) in bounded time and memory, every poisoned file or source is named
with its cause on one line, the poisoned departments are blocked from publication and every
other department publishes, and rows in = landed + quarantined (a refused file is one input unit). A file that vanishes between listing
and reading is contained the same way (ingest layer, real DuckDB).
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
import sys
import time
import uuid
import zipfile
from pathlib import Path

import psycopg
import pymysql
import pytest
import yaml

from pipelines.config import DEFAULT_CATALOG
from tests.faults.bombs import peak_rss_kb, workbook_bomb
from tests.faults.support import CHILD, ROOT, clean_env, landing_counts, query
from tests.support.catalogs import kpi
from tests.support.http_server import HttpServer, drip_route, endless_route, json_route, redirect_route

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MONTHS = [f"{2025 + (m + 9) // 12}-{(m + 9) % 12 + 1:02d}" for m in range(13)]  # 2025-10 .. 2026-10
STRAY = "health/2026-00-stray-quote.csv"
COPY = "health/zz-copy-of-returns_2026-10.csv"
BIG = {"employment/a-big-400-digits.xlsx": 400, "employment/a-big-5000-digits.xlsx": 5000}
BIG_ROW, BIG_REFUSED = BIG  # a 400-digit cell quarantines its row; over 4,300 digits the reader refuses the file
BOMB = "employment/a-bomb.xlsx"
HOSTILE = {"endless": "response over the 2 MB limit", "drip": "not complete within the time limit",
           "redirect": "redirected to another host", "locked": "statement timeout"}
DEMO = {"rows_in": 957, "landed": 952, "quarantined": 5}  # the demo's four files (docs/faults.md)
WEB_ROWS, PG_ROWS, MARIA_ROWS = 26, 13, 13  # + one web row dated 1900-01, quarantined


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


def _catalog(dst: Path, web_url: str, hostile: dict[str, str]) -> None:
    shutil.copytree(DEFAULT_CATALOG, dst)

    def edit(name, fn):
        doc = yaml.safe_load((dst / name).read_text())
        fn(doc)
        (dst / name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))

    cols = {"kpi_id": "kpi", "period": "month", "org_id": "org", "value": "value"}
    common = {"cadence": "monthly", "lag_days": 14, "columns": cols}
    edit("departments.yml", lambda d: d["departments"].extend(
        {"id": i, "name": i.title(), "channel": f"#{i}"} for i in ("web", "pgq", "maria", *HOSTILE)))
    edit("sources.yml", lambda d: d["sources"].extend([
        {"id": "web_api", "department": "web", "kind": "http", "url": web_url, "format": "json",
         "records_path": "data", "timeout_seconds": 5, "retries": 0, **common},
        {"id": "pg_query", "department": "pgq", "kind": "sql", "url_env": "KPIWATCH_TEST_PGQ_URL",
         "query": "select kpi, month, org, value from kpi_rows where region = :region order by month",
         "params": {"region": "north"}, **common},
        {"id": "maria_query", "department": "maria", "kind": "sql", "url_env": "KPIWATCH_TEST_MARIA_URL",
         "query": "select kpi, month, org, value from {table} where region = :region order by month",
         "params": {"region": "north"}, **common},
        {"id": "endless_api", "department": "endless", "kind": "http", "url": hostile["endless"],
         "max_response_mb": 2, "retries": 0, **common},
        {"id": "drip_api", "department": "drip", "kind": "http", "url": hostile["drip"], "timeout_seconds": 2,
         "retries": 0, **common},
        {"id": "redirect_api", "department": "redirect", "kind": "http", "url": hostile["redirect"], "retries": 0,
         **common},
        {"id": "locked_db", "department": "locked", "kind": "sql", "url_env": "KPIWATCH_TEST_PGQ_URL",
         "table": "locked_rows", "statement_timeout_seconds": 2, **common},
    ]))
    edit("sources.yml", lambda d: next(s for s in d["sources"] if s["id"] == "employment_return").update(
        max_uncompressed_mb=20))
    edit("kpis.yml", lambda d: d["kpis"].extend([
        kpi("web_visits", "web_api", "web"), kpi("pg_cases", "pg_query", "pgq"), kpi("maria_cases", "maria_query", "maria"),
        *(kpi(f"{h}_kpi", f"{h}_{'db' if h == 'locked' else 'api'}", h) for h in HOSTILE)]))


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
    workbook_bomb(data / "employment" / "employment_return_2026-10.xlsx", data / BOMB, 1_000_000)

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
            con.execute("create table locked_rows (kpi text, month text, org text, value numeric)")
            con.execute("insert into locked_rows values ('locked_kpi', '2026-10', 'A', 1)")
        with maria.cursor() as cur:
            cur.execute(f"create table {maria_table} (kpi varchar(40), month varchar(7), org varchar(10), "
                        "value decimal(12, 2), region varchar(10))")
            cur.executemany(f"insert into {maria_table} values (%s, %s, %s, %s, %s)",
                            [("maria_cases", *r[1:]) for r in rows])
        web = {"data": [{"kpi": "web_visits", "month": m, "org": org, "value": 40 + i}
                        for i, m in enumerate(MONTHS) for org in ("X", "Y")]
                       + [{"kpi": "web_visits", "month": "1900-01", "org": "X", "value": 1}]}
        locker = psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}")
        locker.execute("lock table locked_rows in access exclusive mode")  # held for the whole run
        with HttpServer({"/internal": json_route(web)}) as internal, \
                HttpServer({"/api/visits.json": json_route(web), "/endless": endless_route(), "/drip": drip_route(1.0),
                            "/redirect": redirect_route(internal.url("/internal"))}) as srv:
            _catalog(catalog, srv.url("/api/visits.json"), {h: srv.url(f"/{h}") for h in HOSTILE if h != "locked"})
            src = (catalog / "sources.yml").read_text().replace("{table}", maria_table)
            (catalog / "sources.yml").write_text(src)
            env = clean_env(KPIWATCH_TEST_PGQ_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
                            KPIWATCH_TEST_MARIA_URL="mysql+pymysql://root@127.0.0.1:3306/test")
            t0 = time.monotonic()
            run, peak_kb = peak_rss_kb([sys.executable, "-c", CHILD, "run", "--catalog", str(catalog), "--data-dir",
                                        str(data), "--warehouse", str(wh)], cwd=ROOT, env=env, capture_output=True,
                                       text=True, timeout=400)
            took = time.monotonic() - t0
            web_hits, internal_hits = list(srv.hits), list(internal.hits)
        locker.rollback()
        locker.close()
        print(f"kpiwatch run: {took:.0f} s, peak RSS {peak_kb / 1024:.0f} MB")
        yield {"run": run, "wh": wh, "data": data, "web_hits": web_hits, "internal_hits": internal_hits,
               "took": took, "peak_kb": peak_kb}
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
    # Completed; the hostile sources read nothing, so the run exits 4 naming each (README).
    assert run.returncode == 4, out[-3000:]
    assert "Traceback" not in out and "DagsterExecutionStepExecutionError" not in out
    lines = out.splitlines()

    def line_with(*parts):
        return next((ln for ln in lines if all(p in ln for p in parts)), None)

    assert line_with("ingest__health_returns", STRAY, "refused (unreadable_source)",
                     "a field is longer than 131,072 characters"), out[-4000:]
    assert line_with("ingest__employment_return", "a-big-5000-digits.xlsx", "refused",
                     "a number with more than 4,300 digits"), out[-4000:]
    # A 400-digit integer is one bad value, not a bad file: its row is quarantined, the rest land.
    assert line_with("quarantined 1 × unparseable_number (employment_return: employment/a-big-400-digits.xlsx)"), out[-4000:]
    assert not line_with("a-big-400-digits.xlsx", "refused"), out[-4000:]
    assert line_with("ingest__health_returns", COPY, "identical to health/returns_2026-10.csv"), out[-4000:]
    assert line_with("ingest__employment_return", BOMB, "refused", "over the 20 MB limit (max_uncompressed_mb)")
    for dept, cause in HOSTILE.items():
        assert line_with(f"ingest__{dept}_", "could not be read", cause), (dept, out[-4000:])
        assert line_with("error: source", f"{dept}_", "could not be read"), (dept, run.stderr[-4000:])
    # Sources that landed rows beside a refused file are not named as unread.
    assert not line_with("error: source health_returns") and not line_with("error: source employment_return")
    assert re.search(r"run \S+ succeeded", out)


@pytest.mark.slow
def test_the_run_is_bounded_in_time_and_memory(poisoned):
    # The bombs are refused before they are read: well under 1 GB (the workbook expands to 65 MB
    # of XML, the endless body would never end) and the drip, lock and deadline end on time.
    assert poisoned["peak_kb"] < 1024 * 1024, poisoned["peak_kb"]
    assert poisoned["took"] < 300, poisoned["took"]
    assert poisoned["internal_hits"] == []  # the redirect to the other port was not followed


@pytest.mark.slow
def test_rows_in_equal_landed_plus_quarantined_and_later_files_land(poisoned):
    c = landing_counts(poisoned["wh"])
    refused = 1 + 1 + 1  # each refused file is one input unit (stray quote, 5,000 digits, bomb)
    [(big_rows,)] = query(poisoned["wh"], "select rows_in from raw.batches where source_file = 'employment/a-big-400-digits.xlsx'")
    new = WEB_ROWS + PG_ROWS + MARIA_ROWS + big_rows - 1  # the 400-digit workbook lands but its one row
    assert c["rows_in"] == DEMO["rows_in"] + refused + new + 1 + 1
    assert c["landed"] == c["observations"] == c["distinct_observations"] == DEMO["landed"] + new
    assert c["quarantined"] == c["quarantine_rows"] == DEMO["quarantined"] + refused + 1 + 1
    assert c["rows_in"] == c["landed"] + c["quarantined"]
    files = dict(query(poisoned["wh"], "select source_file, rows_accepted from raw.batches where source_file is not null"))
    # The files after the poisoned ones (by name) landed in the same run; the copy added nothing.
    assert files["health/returns_2026-10.csv"] > 0 and files["employment/employment_return_2026-10.xlsx"] > 0
    assert files[STRAY] == 0 and files[BIG_REFUSED] == 0 and files[BOMB] == 0 and COPY not in files
    assert files[BIG_ROW] == big_rows - 1
    reasons = dict(query(poisoned["wh"], "select b.source_file, q.reason from raw.quarantine q "
                         "join raw.batches b using (batch_id) where q.row_number is null"))
    assert reasons[STRAY] == reasons[BOMB] == reasons[BIG_REFUSED] == "unreadable_source" and BIG_ROW not in reasons
    [(reason, detail)] = query(poisoned["wh"], "select q.reason, q.detail from raw.quarantine q join raw.batches b "
                               f"using (batch_id) where b.source_file = '{BIG_ROW}'")
    assert reason == "unparseable_number" and "an integer of 400 digits" in detail, detail


@pytest.mark.slow
def test_only_the_poisoned_departments_are_blocked(poisoned):
    wh = poisoned["wh"]
    decisions = dict(query(wh, "select department_id, published from publish.decisions"))
    assert decisions == {"health": False, "employment": False, "transport": True, "web": True, "pgq": True,
                         "maria": True, **{h: False for h in HOSTILE}}
    [(reason,)] = query(wh, "select reason from publish.decisions where department_id = 'health'")
    assert STRAY in reason and "131,072" in reason
    # The rest of the graph ran: marts, alerts, both reports and the ledger.
    assert query(wh, "select count(*) from ledger.runs") == [(1,)]
    assert query(wh, "select count(distinct department_id) from marts.fct_kpi_progress where period is not null")[0][0] == 6
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
    assert poisoned["web_hits"].count("/api/visits.json") == 1  # one page, one request
    status = dict(query(wh, "select kpi_id, status from marts.fct_kpi_progress where is_latest"))
    assert {"web_visits", "pg_cases", "maria_cases"} <= status.keys()


@pytest.mark.slow
def test_a_period_far_before_the_baseline_is_quarantined_not_a_thousand_missing_submissions(poisoned):
    wh = poisoned["wh"]
    [(detail,)] = query(wh, "select detail from raw.quarantine where source_id = 'web_api' and reason = 'period_out_of_range'")
    assert detail.startswith("period 1900-01-01 is more than 10 years before the KPI's baseline")
    missing = query(wh, "select count(*) from quality.drift_findings where kind = 'missing_submission' "
                        "and source_id = 'web_api'")[0][0]
    assert missing == 0


def test_a_file_removed_between_listing_and_reading_is_named_and_read_next_run(tmp_path, demo_data, monkeypatch):
    from pipelines.catalog.loader import load_catalog
    from pipelines.ingest import landing
    from pipelines.warehouse import connect

    data = tmp_path / "data"
    shutil.copytree(demo_data / "health", data / "health")
    ghost = data / "health" / "returns_2026-00.csv"
    real_listing = landing.files_in_order
    monkeypatch.setattr(landing, "files_in_order", lambda src, d: sorted(real_listing(src, d) + [ghost]))
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
