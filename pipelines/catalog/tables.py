"""Write the validated catalog into the warehouse's `catalog` schema (its rows replaced whole each
run, in one transaction; the tables themselves are kept so that views built on them stay)."""
from __future__ import annotations

import datetime as dt

from pipelines.catalog.loader import Catalog, standard_points

DDL = """
create schema if not exists catalog;
create table if not exists catalog.settings (as_of date not null, catalog_name varchar);
create table if not exists catalog.departments (
    department_id varchar primary key, name varchar not null, channel varchar,
    head_name varchar, head_slack varchar);
create table if not exists catalog.sources (
    source_id varchar primary key, department_id varchar, kind varchar not null,
    location varchar, cadence varchar not null, lag_days integer not null);
create table if not exists catalog.kpis (
    kpi_id varchar primary key, name varchar not null, department_id varchar not null,
    source_id varchar not null, owner_name varchar, owner_slack varchar, unit varchar,
    direction varchar not null, frequency varchar not null, aggregation varchar not null,
    scale double precision not null, tolerance double precision not null, trajectory varchar not null,
    methodology varchar, tags varchar, targets_from varchar not null, fiscal_start_month integer not null,
    year_to_date varchar, code varchar not null, tolerance_kind varchar not null,
    allow_negative boolean not null, min_value double precision, max_value double precision,
    decimals integer);
create table if not exists catalog.targets (
    kpi_id varchar not null, point_type varchar not null, value double precision not null,
    point_date date not null, effective_from date);
create table if not exists catalog.standards (
    kpi_id varchar not null, value double precision, effective_from date not null,
    lower_value double precision, upper_value double precision);
create table if not exists catalog.milestones (
    milestone_id varchar primary key, title varchar not null, department_id varchar not null,
    kpi_id varchar, threshold double precision, due_date date not null,
    owner_name varchar, owner_slack varchar, completed_on date,
    test varchar not null, from_date date, completed_by varchar);
"""

TABLES = ("settings", "departments", "sources", "kpis", "targets", "standards", "milestones")

DEFAULT_LAG_DAYS = 14


def _columns(ddl: str) -> dict[str, list[str]]:
    """Column names per table as the DDL above declares them."""
    out = {}
    for stmt in ddl.split(";"):
        stmt = " ".join(stmt.split())
        if stmt.startswith("create table"):
            name = stmt.split()[5].split(".")[1]
            body = stmt[stmt.index("(") + 1:stmt.rindex(")")]
            out[name] = [c.strip().split()[0] for c in body.split(",")]
    return out


def _drop_outdated(con) -> None:
    """A catalog table whose columns differ from this release's (an older warehouse) is dropped
    to be created anew; dependent dbt views are rebuilt by the run's dbt step."""
    from pipelines.warehouse import dialect

    for table, wanted in _columns(DDL).items():
        have = [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'catalog' and table_name = ? "
            "order by ordinal_position", [table]).fetchall()]
        if have and have != wanted:
            con.execute(f"drop table catalog.{table}" + (" cascade" if dialect(con) == "postgres" else ""))


def _float(value) -> float | None:
    return None if value is None else float(value)


def fiscal_start_month(kpi: dict) -> int:
    """The month a KPI's year starts: its fiscal_year_start_month, April for a fiscal-year KPI
    without one (the UK government's year), January otherwise."""
    default = 4 if kpi["frequency"] == "fiscal_year" else 1
    return int(kpi.get("fiscal_year_start_month", default))


def source_location(src: dict) -> str:
    """Where a source's data comes from, for catalog.sources (never a secret: an environment
    variable's name, not its value; a URL without its query string, which may hold a key)."""
    kind = src["kind"]
    if kind == "sql":
        where = src.get("sqlite_path") or f"${src['url_env']}"
        if "table" in src:
            return f"{where} table {src['table']}"
        return f"{where} query {' '.join(src['query'].split())}"
    if kind == "http":
        if "url_env" in src:
            return f"${src['url_env']}"
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(src["url"])
        return urlunsplit(parts._replace(query="…" if parts.query else "", fragment=""))
    return src["path"]


PERCENT_UNITS = {"percent", "%", "per cent", "percentage", "pct"}


def is_percent_unit(unit: str) -> bool:
    """A unit that means a percentage, however it is spelled (`percent`, `%`, `per cent`)."""
    return " ".join(str(unit).lower().split()) in PERCENT_UNITS


def tolerance_of(kpi: dict, defaults: dict) -> tuple[float, str]:
    """(amount, kind) of a KPI's tolerance: kind `amount` (an absolute distance) or `share`
    (a fraction of the target: "10%" -> 0.10)."""
    raw = kpi.get("tolerance", defaults.get("tolerance", 0))
    if isinstance(raw, str) and raw.endswith("%"):
        return float(raw[:-1]) / 100.0, "share"
    return float(raw), "amount"


def value_range(kpi: dict, defaults: dict) -> tuple[float | None, float | None]:
    """The inclusive (min, max) a KPI's values must lie in: its own min / max; else 0 unless
    negatives are allowed; a percent unit is capped at 100 unless max says otherwise."""
    allow_negative = kpi.get("allow_negative", defaults.get("allow_negative", False))
    low = kpi.get("min", None if allow_negative else 0.0)
    high = kpi.get("max", 100.0 if is_percent_unit(kpi["unit"]) else None)
    return _float(low), _float(high)


def decimals_of(kpi: dict) -> int | None:
    """Decimals shown for a KPI: its own `decimals`, else the most any of its catalog targets,
    standards or baseline is written with (3.15 -> 2), else None (the display's default)."""
    if "decimals" in kpi:
        return int(kpi["decimals"])
    numbers = [t.get("value") for t in kpi.get("targets", [])] + [(kpi.get("baseline") or {}).get("value")]
    numbers += [p.get(k) for p in standard_points(kpi) for k in ("value", "lower", "upper")]
    places = [len(repr(float(n)).split(".")[1].rstrip("0")) for n in numbers
              if isinstance(n, (int, float)) and "e" not in repr(float(n))]
    return max(places) if places else None


def write_catalog(con, catalog: Catalog, as_of: dt.date) -> dict[str, int]:
    d = dt.date.fromisoformat
    con.execute("begin")
    _drop_outdated(con)
    con.execute(DDL)
    for table in TABLES:
        con.execute(f"delete from catalog.{table}")
    con.execute("insert into catalog.settings values (?, ?)", [as_of, catalog.name])
    con.executemany(
        "insert into catalog.departments values (?, ?, ?, ?, ?)",
        [
            [i, x["name"], x.get("channel"), x.get("head", {}).get("name"), x.get("head", {}).get("slack")]
            for i, x in catalog.departments.items()
        ],
    )
    con.executemany(
        "insert into catalog.sources values (?, ?, ?, ?, ?, ?)",
        [
            [i, s.get("department"), s["kind"], source_location(s), s["cadence"], s.get("lag_days", DEFAULT_LAG_DAYS)]
            for i, s in catalog.sources.items()
        ],
    )
    kpi_rows, target_rows, standard_rows = [], [], []
    for i, k in catalog.kpis.items():
        standard_rows += [[i, _float(p.get("value")), d(p["effective_from"]), _float(p.get("lower")), _float(p.get("upper"))]
                          for p in standard_points(k)]
        tolerance, tolerance_kind = tolerance_of(k, catalog.defaults)
        low, high = value_range(k, catalog.defaults)
        kpi_rows.append([
            i, k["name"], k["department"], k["source"], k["owner"]["name"], k["owner"].get("slack"),
            k["unit"], k["direction"], k["frequency"], k["aggregation"], float(k.get("scale", 1)),
            tolerance, k.get("trajectory", "linear"), k.get("methodology"),
            ",".join(k.get("tags", [])), k.get("targets_from", "catalog"), fiscal_start_month(k),
            k.get("year_to_date"), k.get("code", i), tolerance_kind,
            bool(k.get("allow_negative", catalog.defaults.get("allow_negative", False))), low, high, decimals_of(k),
        ])
        if k.get("targets_from", "catalog") == "source" or "targets" not in k:
            continue  # each period's target comes with the data, or a standard alone
        if "baseline" in k:  # (annual targets of a year-to-date KPI have none)
            target_rows.append([i, "baseline", float(k["baseline"]["value"]), d(k["baseline"]["date"]), None])
        for t in k["targets"]:
            if t.get("withdrawn"):  # periods from effective_from have no target
                target_rows.append([i, "withdrawn", 0.0, d(t["effective_from"]), None])
                continue
            eff = d(t["effective_from"]) if t.get("effective_from") else None
            target_rows.append([i, "target", float(t["value"]), d(t["due"]), eff])
    con.executemany("insert into catalog.kpis values (" + ", ".join(["?"] * 24) + ")", kpi_rows)
    if target_rows:
        con.executemany("insert into catalog.targets values (?, ?, ?, ?, ?)", target_rows)
    if standard_rows:
        con.executemany("insert into catalog.standards values (?, ?, ?, ?, ?)", standard_rows)
    ms_rows = []
    for i, m in catalog.milestones.items():
        kpi = catalog.kpis.get(m.get("kpi")) or {}
        department = m.get("department") or kpi["department"]
        # a milestone without its own owner is the KPI owner's, else the department head's
        owner = m.get("owner") or kpi.get("owner") or catalog.departments[department].get("head") or {"name": None}
        threshold = m.get("threshold")
        ms_rows.append([
            i, m["title"], department, m.get("kpi"), float(threshold) if threshold is not None else None, d(m["due"]),
            owner["name"], owner.get("slack"), d(m["completed_on"]) if m.get("completed_on") else None,
            m.get("test", "by_date"), d(m["from"]) if m.get("from") else None, m.get("completed_by"),
        ])
    if ms_rows:
        con.executemany("insert into catalog.milestones values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ms_rows)
    con.execute("commit")
    return {
        "departments": len(catalog.departments),
        "sources": len(catalog.sources),
        "kpis": len(catalog.kpis),
        "targets": len(target_rows),
        "standards": len(standard_rows),
        "milestones": len(ms_rows),
    }
