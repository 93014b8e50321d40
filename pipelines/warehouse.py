"""DuckDB warehouse access: short-lived connections and the landing/quality DDL.

DuckDB lets one process at a time open a database file. Connections are held only for a block
of statements, and a lock held by another process becomes a clear WarehouseBusy error.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import duckdb


class WarehouseBusy(RuntimeError):
    pass


def rows(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[dict]:
    """The result of a query as dicts keyed by column name (values as bound parameters)."""
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table]).fetchone()[0])


@contextlib.contextmanager
def connect(path: str | Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet: run `kpiwatch run` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusy(
                f"warehouse busy: {path} is open in another process (a run is in progress?)"
            ) from None
        raise
    try:
        yield con
    finally:
        con.close()


LANDING_DDL = """
create schema if not exists raw;
create schema if not exists quality;
create table if not exists raw.batches (
    batch_id varchar primary key,
    source_id varchar not null,
    department_id varchar not null,
    source_file varchar,
    source_sha256 varchar not null,
    source_query varchar,
    rows_in integer not null,
    rows_accepted integer not null,
    rows_quarantined integer not null,
    loaded_at timestamp not null,
    run_id varchar
);
create table if not exists raw.observations (
    batch_id varchar not null,
    source_id varchar not null,
    department_id varchar not null,
    kpi_id varchar not null,
    org_id varchar not null,
    period date not null,
    value double,
    numerator double,
    denominator double,
    source_file varchar,
    source_sha256 varchar not null,
    source_query varchar,
    row_number integer not null,
    loaded_at timestamp not null
);
create table if not exists raw.quarantine (
    batch_id varchar not null,
    source_id varchar not null,
    department_id varchar not null,
    row_number integer,
    reason varchar not null,
    detail varchar,
    record varchar,
    loaded_at timestamp not null
);
create table if not exists quality.check_results (
    run_id varchar,
    batch_id varchar not null,
    source_id varchar not null,
    department_id varchar not null,
    suite varchar not null,
    check_name varchar not null,
    expectation_type varchar,
    column_name varchar,
    severity varchar not null,
    success boolean not null,
    observed varchar,
    expected varchar,
    unexpected_count integer,
    checked_at timestamp not null
);
"""


# Columns added after the first release: existing warehouses gain them on the next run.
LANDING_MIGRATIONS = """
alter table raw.batches add column if not exists watermark varchar;
alter table raw.observations add column if not exists target double;
"""


def ensure_landing(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(LANDING_DDL)
    con.execute(LANDING_MIGRATIONS)
