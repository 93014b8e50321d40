"""Warehouse access: short-lived connections and the landing/quality DDL.

Two targets share one code path (`KPIWATCH_TARGET`, or `kpiwatch run --target`):

- ``duckdb`` (the default): one file. DuckDB lets one process at a time open it; connections
  are held only for a block of statements, and a lock held by another process becomes a clear
  WarehouseBusy error.
- ``postgres``: a shared PostgreSQL database, reached with the same ``KPIWATCH_PG_*``
  variables as dbt's profile (docs/warehouse.md). kpiwatch's SQL is written once in the
  dialect both understand; the adapter below turns the ``?`` placeholders into psycopg's and
  loads ``numeric`` results as floats, as DuckDB returns them.

Local files (reports, alert log, ledger mirror) stay beside ``KPIWATCH_WAREHOUSE`` on both.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb

TARGETS = ("duckdb", "postgres")

PG_ENV = {
    "host": ("KPIWATCH_PG_HOST", "localhost"),
    "port": ("KPIWATCH_PG_PORT", "5432"),
    "user": ("KPIWATCH_PG_USER", "kpiwatch"),
    "password": ("KPIWATCH_PG_PASSWORD", ""),
    "dbname": ("KPIWATCH_PG_DBNAME", "kpiwatch"),
}


class WarehouseBusy(RuntimeError):
    pass


def is_warehouse_failure(exc: BaseException) -> bool:
    """A failure of the warehouse itself (busy, I/O, out of memory, connection lost), as opposed
    to one caused by a source's data: ingest contains the latter per file and lets these stop
    the step."""
    duck = (duckdb.IOException, duckdb.ConnectionException, duckdb.FatalException, duckdb.InterruptException,
            duckdb.OutOfMemoryException, duckdb.PermissionException, duckdb.TransactionException,
            duckdb.InternalException)
    if isinstance(exc, (WarehouseBusy, KeyboardInterrupt, SystemExit) + duck):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


class WarehouseConfigError(ValueError):
    """A warehouse setting that cannot work (unknown target, unreachable database)."""


def current_target(environ=None) -> str:
    environ = os.environ if environ is None else environ
    target = (environ.get("KPIWATCH_TARGET") or "duckdb").strip().lower()
    if target not in TARGETS:
        raise WarehouseConfigError(
            f"KPIWATCH_TARGET: unknown warehouse target {target!r} (expected one of: {', '.join(TARGETS)})")
    return target


def pg_params(environ=None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    params = {key: environ.get(var) or default for key, (var, default) in PG_ENV.items()}
    if not params["port"].isdigit() or not 0 < int(params["port"]) < 65536:
        raise WarehouseConfigError(f"KPIWATCH_PG_PORT: {params['port']!r} is not a port number (1-65535)")
    return params


def pg_describe(environ=None) -> str:
    """Where the Postgres warehouse is, for messages (never the password)."""
    p = pg_params(environ)
    return f"postgresql://{p['user']}@{p['host']}:{p['port']}/{p['dbname']}"


def pg_sqlalchemy_url(environ=None) -> str:
    """The warehouse as a SQLAlchemy URL for GX (which validates the marts through it). A
    password stays the placeholder ${KPIWATCH_PG_PASSWORD}: GX reads it from the environment
    when it connects, so it never appears in a stored configuration or validation result."""
    from urllib.parse import quote

    p = pg_params(environ)
    auth = quote(p["user"], safe="") + (":${KPIWATCH_PG_PASSWORD}" if p["password"] else "")
    return f"postgresql+psycopg://{auth}@{p['host']}:{int(p['port'])}/{quote(p['dbname'], safe='')}"


def dialect(con) -> str:
    return "postgres" if isinstance(con, PgConnection) else "duckdb"


def _pg_placeholders(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (and a literal `%` to `%%`), outside quoted text."""
    out, i, n = [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            j = sql.find(ch, i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == ch:  # doubled quote inside a literal
                j = sql.find(ch, j + 2)
            j = n - 1 if j == -1 else j
            out.append(sql[i:j + 1].replace("%", "%%"))
            i = j + 1
            continue
        if ch == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j == -1 else j
            out.append(sql[i:j].replace("%", "%%"))
            i = j
            continue
        out.append("%s" if ch == "?" else "%%" if ch == "%" else ch)
        i += 1
    return "".join(out)


class PgConnection:
    """A psycopg connection that answers the calls kpiwatch makes of a DuckDB connection:
    ``execute(sql, params)`` (returning itself), ``fetchone``/``fetchall``/``description``,
    ``executemany`` and ``close``. Autocommit, so ``begin``/``commit`` statements work as on
    DuckDB."""

    def __init__(self, raw):
        self.raw = raw
        self._cur = None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> "PgConnection":
        cur = self.raw.cursor()
        if params:
            cur.execute(_pg_placeholders(sql), list(params))
        else:
            cur.execute(sql.encode())  # no parameters: may hold several statements
        self._cur = cur
        return self

    def executemany(self, sql: str, seq) -> "PgConnection":
        seq = [list(p) for p in seq]
        cur = self.raw.cursor()
        if seq:
            cur.executemany(_pg_placeholders(sql), seq)
        self._cur = cur
        return self

    def fetchone(self):
        return self._cur.fetchone()

    def fetchall(self):
        return self._cur.fetchall()

    @property
    def description(self):
        return self._cur.description

    def copy_rows(self, table: str, columns: Sequence[str], records) -> int:
        """Bulk insert through COPY (identifiers are kpiwatch's own, never from config)."""
        n = 0
        cur = self.raw.cursor()
        with cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as cp:
            for rec in records:
                cp.write_row(rec)
                n += 1
        return n

    def close(self) -> None:
        self.raw.close()


def _pg_connect(read_only: bool) -> PgConnection:
    import psycopg
    from psycopg.types.numeric import FloatLoader

    p = pg_params()
    try:
        raw = psycopg.connect(host=p["host"], port=int(p["port"]), user=p["user"], password=p["password"] or None,
                              dbname=p["dbname"], autocommit=True, connect_timeout=10,
                              application_name="kpiwatch")
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseConfigError(f"cannot reach the Postgres warehouse {pg_describe()}: {first}") from None
    raw.adapters.register_loader("numeric", FloatLoader)
    if read_only:
        raw.execute("set default_transaction_read_only = on")
    return PgConnection(raw)


# Key of the Postgres advisory lock a kpiwatch run holds for its whole length (any bigint that
# other applications sharing the database do not use; "kpiwatch" in ASCII).
RUN_LOCK_KEY = 0x6B70697761746368


# DuckDB: lock files (beside the warehouse) whose exclusive run lock this process holds. Its own
# connections then go ahead; any other process's connection is refused while the run lasts.
_RUN_LOCKS_HELD: set[str] = set()


def run_lock_path(warehouse: str | Path) -> Path:
    path = Path(warehouse)
    return path.with_name(path.name + ".run.lock")


def _lock_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        pid = ""
    return f" (process {pid})" if pid.isdigit() else ""


@contextlib.contextmanager
def run_lock(warehouse: str | Path | None = None) -> Iterator[None]:
    """One kpiwatch run at a time per warehouse, holding it for the whole run.

    PostgreSQL: a session advisory lock. DuckDB: an exclusive `flock` on `<warehouse>.run.lock`
    for the run's whole length. Every other kpiwatch connection (status, report, silence, a
    second run, the Dagster UI's code) takes that lock shared for as long as it holds the file,
    so while a run lasts they are refused at once with WarehouseBusy (exit 3), and a run does
    not start while one of them holds the warehouse. The DuckDB file itself is probed too (held
    by a notebook?), so a refused run stops before Dagster starts and writes nothing."""
    if current_target() == "postgres":
        con = _pg_connect(read_only=False)
        try:
            if not con.execute("select pg_try_advisory_lock(?)", [RUN_LOCK_KEY]).fetchone()[0]:
                raise WarehouseBusy(f"warehouse busy: another kpiwatch run holds the Postgres warehouse {pg_describe()}")
            yield
        finally:
            con.close()  # ends the session, which releases the lock
        return
    if warehouse is None:
        yield
        return
    import fcntl

    path = Path(warehouse)
    lock = run_lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseBusy(f"warehouse busy: {path} is in use by another kpiwatch run or command"
                                f"{_lock_holder(fd)}; try again when it has finished") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        if path.exists():  # held by a process outside kpiwatch (DuckDB allows one at a time)?
            with connect(path, read_only=True, _probe=True):
                pass
        _RUN_LOCKS_HELD.add(str(lock.resolve()))
        try:
            yield
        finally:
            _RUN_LOCKS_HELD.discard(str(lock.resolve()))
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def _shared_run_lock(path: Path) -> Iterator[None]:
    """A connection's share of the run lock: refused while another process's run holds it."""
    lock = run_lock_path(path)
    if str(lock.resolve()) in _RUN_LOCKS_HELD:
        yield  # this process is the run
        return
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # e.g. a read-only directory: no run can write there either
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseBusy(f"warehouse busy: a kpiwatch run{_lock_holder(fd)} is in progress on {path}; "
                                "try again when it has finished") from None
        yield
    finally:
        os.close(fd)


def rows(con, sql: str, params=None) -> list[dict]:
    """The result of a query as dicts keyed by column name (values as bound parameters)."""
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def table_exists(con, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table]).fetchone()[0])


def insert_frame(con, table: str, columns: Sequence[str], frame, select: str | None = None) -> None:
    """Insert a pandas frame's `columns` into `table`. DuckDB reads the frame in place (with
    `select`, the SELECT list over it); Postgres takes it through COPY, missing values as NULL."""
    if dialect(con) == "duckdb":
        con.register("_frame", frame)
        try:
            con.execute(f"insert into {table} ({', '.join(columns)}) select {select or ', '.join(columns)} from _frame")
        finally:
            con.unregister("_frame")
        return
    import pandas as pd

    part = frame[list(columns)].astype(object)
    part = part.where(pd.notna(part), None)
    con.copy_rows(table, columns, part.itertuples(index=False, name=None))


@contextlib.contextmanager
def connect(path: str | Path, read_only: bool = False, _probe: bool = False) -> Iterator[Any]:
    """A connection to the warehouse: the DuckDB file `path`, or the Postgres database when the
    target is postgres (then `path` only places the local files beside it). On DuckDB it is
    refused (WarehouseBusy) while another process's run holds the warehouse (run_lock)."""
    if current_target() == "postgres":
        con = _pg_connect(read_only)
        try:
            yield con
        finally:
            con.close()
        return
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet: run `kpiwatch run` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext() if _probe else _shared_run_lock(path):
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
    value double precision,
    numerator double precision,
    denominator double precision,
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
alter table raw.observations add column if not exists target double precision;
"""


# Department columns that are empty for a shared source (one without a department, feeding KPIs
# of several): its batches, its batch-level checks and the quarantined rows whose KPI is unknown
# belong to no one department. Warehouses created before shared sources lose the NOT NULL.
NULLABLE_DEPARTMENT = (("raw", "batches"), ("raw", "quarantine"), ("raw", "excluded_rows"),
                       ("quality", "check_results"))


def allow_shared_sources(con) -> None:
    for schema, table in NULLABLE_DEPARTMENT:
        row = con.execute(
            "select is_nullable from information_schema.columns where table_schema = ? and table_name = ? "
            "and column_name = 'department_id'", [schema, table]).fetchone()
        if row and str(row[0]).upper() == "NO":
            con.execute(f"alter table {schema}.{table} alter column department_id drop not null")


def ensure_landing(con) -> None:
    con.execute(LANDING_DDL)
    con.execute(LANDING_MIGRATIONS)
    allow_shared_sources(con)
