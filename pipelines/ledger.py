"""The run ledger: one hash-chained record per run, so an edited or deleted record is detected.

Every run of the pipeline ends by appending a record to `ledger.runs` in the warehouse: the run
id, its inputs (the catalog files and each new source batch, with sha256), its outputs (row
counts, publication decisions), a summary of the checks that ran and the alerts it sent. Each
record's hash covers the record and the previous record's hash, so changing any old record (or
deleting one) breaks the chain from that record on. The same records are mirrored to an
append-only file beside the warehouse (`ledger.jsonl`): a whole chain recomputed inside the
database no longer matches the file. `kpiwatch verify-ledger` checks both (docs/faults.md).
"""

import datetime as dt
import decimal
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from pipelines.config import DATA_TEAM_OWNER
from pipelines.resources import KpiwatchResource
from pipelines.warehouse import rows as _rows

GENESIS = "0" * 64
LEDGER_FILE = "ledger.jsonl"
LEDGER_DDL = """
create schema if not exists ledger;
create table if not exists ledger.runs (
    seq integer primary key,          -- 1, 2, 3, ... in the order runs finished
    run_id varchar not null unique,
    recorded_at timestamp not null,
    record varchar not null,          -- the record as canonical JSON (sorted keys, no spaces)
    prev_hash varchar not null,       -- hash of record seq - 1 (GENESIS for the first)
    hash varchar not null             -- sha256(prev_hash + "\\n" + record)
)
"""
FIELDS = ("seq", "run_id", "recorded_at", "record", "prev_hash", "hash")


def _plain(value):
    """A value as it is hashed, the same whichever warehouse engine read it: DuckDB gives
    HUGEINT sums and DECIMAL as int / Decimal where Postgres gives bigint / float, so whole
    numbers become ints and other decimals floats; dates and times are ISO text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, (float, decimal.Decimal)):
        if isinstance(value, decimal.Decimal) and not value.is_finite():
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return int(value) if value == int(value) else float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def canonical(record: dict) -> str:
    return json.dumps(_plain(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{record_json}".encode("utf-8")).hexdigest()


def ledger_path(warehouse: str | Path) -> Path:
    return Path(warehouse).parent / LEDGER_FILE


def _exists(con, schema: str, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                            [schema, table]).fetchone()[0])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_record(con, run_id: str, catalog_dir: str | Path | None = None) -> dict:
    """What a run read, wrote, checked and sent (from the warehouse; absent tables count as empty)."""
    rec: dict = {"run_id": run_id, "inputs": {}, "outputs": {}, "checks": {}, "alerts": {}}
    if catalog_dir is not None:
        rec["inputs"]["catalog"] = {p.name: _sha256(p) for p in sorted(Path(catalog_dir).glob("*.yml"))}
    if _exists(con, "raw", "batches"):
        # Every batch landed since the last record: this run's, and those of runs that were
        # killed before they reached the ledger (each batch is in exactly one record).
        recorded = {b["batch_id"] for r in read_chain(con) for b in json.loads(r["record"]).get("inputs", {}).get("batches", [])}
        rec["inputs"]["batches"] = [b for b in _rows(con, """
            select batch_id, run_id, source_id, source_file, source_sha256, source_query, rows_in, rows_accepted,
                   rows_quarantined
            from raw.batches order by loaded_at, batch_id""") if b["batch_id"] not in recorded]
        totals = con.execute("""select count(*), cast(coalesce(sum(rows_in), 0) as bigint),
                                       cast(coalesce(sum(rows_accepted), 0) as bigint),
                                       cast(coalesce(sum(rows_quarantined), 0) as bigint) from raw.batches""").fetchone()
        rec["outputs"]["landing"] = dict(zip(("batches", "rows_in", "rows_landed", "rows_quarantined"), totals))
        rec["outputs"]["landing"]["observations"] = con.execute("select count(*) from raw.observations").fetchone()[0]
        rec["outputs"]["landing"]["quarantine"] = con.execute("select count(*) from raw.quarantine").fetchone()[0]
    if _exists(con, "marts", "fct_kpi_progress"):
        rec["outputs"]["fct_kpi_progress_rows"] = con.execute("select count(*) from marts.fct_kpi_progress").fetchone()[0]
    if _exists(con, "publish", "decisions"):
        rec["outputs"]["publication"] = {r["department_id"]: r["published"] for r in _rows(
            con, "select department_id, published from publish.decisions where run_id = ? order by 1", [run_id])}
    if _exists(con, "publish", "kpi_figures"):
        rec["outputs"]["figures_published"] = con.execute(
            "select count(*) from publish.kpi_figures where run_id = ?", [run_id]).fetchone()[0]
    if _exists(con, "quality", "check_results"):
        rows = _rows(con, """
            select suite = 'dbt' as dbt, severity, success, count(*) as n,
                   string_agg(distinct check_name, ', ' order by check_name) filter (where not success) as failed
            from quality.check_results where run_id = ? group by suite = 'dbt', severity, success
            order by 1, 2, 3""", [run_id])
        rec["checks"] = {
            "passed": sum(r["n"] for r in rows if r["success"]),
            "failed": sum(r["n"] for r in rows if not r["success"]),
            "failed_critical": sum(r["n"] for r in rows if not r["success"] and r["severity"] == "critical"),
            "failed_names": sorted({n for r in rows if r["failed"] for n in r["failed"].split(", ")}),
        }
    if _exists(con, "alerting", "alert_log"):
        rec["alerts"]["log"] = [list(r.values()) for r in _rows(con, """
            select fingerprint, event, channel, sink, outcome from alerting.alert_log where run_id = ?
            order by 1, 2, 3, 4, 5""", [run_id])]
    if _exists(con, "alerting", "outbox"):
        rec["alerts"]["outbox"] = [list(r.values()) for r in _rows(con, """
            select outbox_id, channel, status from alerting.outbox where run_id = ? order by outbox_id""", [run_id])]
    return rec


def ensure_ledger(con) -> None:
    con.execute(LEDGER_DDL)


def read_chain(con) -> list[dict]:
    if not _exists(con, "ledger", "runs"):
        return []
    return _rows(con, f"select {', '.join(FIELDS)} from ledger.runs order by seq")


def _line(row: dict) -> str:
    return json.dumps({k: (str(row[k]) if k == "recorded_at" else row[k]) for k in FIELDS}, ensure_ascii=False)


def append_record(con, warehouse: str | Path, run_id: str, record: dict, now: dt.datetime) -> dict:
    """Append the run's record (once: a run already recorded keeps its record) and bring the
    mirror file up to date. Returns the run's ledger row."""
    ensure_ledger(con)
    con.execute("begin")
    try:
        existing = _rows(con, f"select {', '.join(FIELDS)} from ledger.runs where run_id = ?", [run_id])
        if existing:
            row = existing[0]
            con.execute("rollback")
        else:
            last = con.execute("select seq, hash from ledger.runs order by seq desc nulls last limit 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            body = canonical(record)
            row = {"seq": seq, "run_id": run_id, "recorded_at": now, "record": body, "prev_hash": prev,
                   "hash": record_hash(prev, body)}
            con.execute(f"insert into ledger.runs ({', '.join(FIELDS)}) values (?, ?, ?, ?, ?, ?)",
                        [row[k] for k in FIELDS])
            con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    _sync_mirror(con, ledger_path(warehouse))
    return row


def _read_mirror(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"seq": None, "line": n})
    return out


def _sync_mirror(con, path: Path) -> None:
    """Append the records the file does not have yet (a crash between the database commit and
    the file write is caught up by the next run). Never rewrites a line."""
    have = max((r["seq"] for r in _read_mirror(path) if isinstance(r.get("seq"), int)), default=0)
    missing = [r for r in read_chain(con) if r["seq"] > have]
    if missing:
        with path.open("a", encoding="utf-8") as fh:
            for r in missing:
                fh.write(_line(r) + "\n")
            fh.flush()


@dataclass
class Verdict:
    ok: bool
    records: int
    head: str | None
    problem: str | None = None       # the first broken record, by number and run
    notes: tuple[str, ...] = ()


def _check_chain(rows: list[dict], where: str) -> str | None:
    prev = GENESIS
    for i, r in enumerate(rows, start=1):
        name = f"record {r.get('seq')} (run {r.get('run_id')})"
        if r.get("seq") != i:
            return f"{where}: record {i} is missing (found {name} in its place)"
        if r.get("prev_hash") != prev:
            return f"{where}: {name} does not chain to record {i - 1} (prev_hash differs)"
        try:
            body = json.loads(r["record"])
        except (TypeError, json.JSONDecodeError):
            return f"{where}: {name} is not valid JSON"
        if record_hash(prev, r.get("record") or "") != r.get("hash"):
            return f"{where}: {name} was changed after it was written (hash mismatch)"
        if body.get("run_id") != r.get("run_id"):
            return f"{where}: {name} has a run id that differs from its record's"
        prev = r["hash"]
    return None


def verify(con, warehouse: str | Path) -> Verdict:
    """Check the chain in the warehouse, the chain in the mirror file, and that they agree."""
    rows = read_chain(con)
    mirror_path = ledger_path(warehouse)
    mirror = _read_mirror(mirror_path)
    head = rows[-1]["hash"] if rows else None
    problem = _check_chain(rows, "ledger.runs")
    if problem is None and mirror:
        problem = _check_chain(mirror, LEDGER_FILE)
    if problem is None and mirror:
        by_seq = {r["seq"]: r for r in rows}
        for m in mirror:
            r = by_seq.get(m["seq"])
            if r is None:
                problem = (f"ledger.runs: record {m['seq']} (run {m['run_id']}) is missing from the warehouse "
                           f"but present in {LEDGER_FILE}")
                break
            if (r["hash"], r["record"], r["run_id"]) != (m["hash"], m["record"], m["run_id"]):
                problem = (f"ledger.runs: record {m['seq']} (run {m['run_id']}) differs from its copy in "
                           f"{LEDGER_FILE} (the warehouse was edited)")
                break
    notes = []
    if not mirror and rows:
        notes.append(f"{mirror_path} not found: only the chain in the warehouse was checked")
    elif problem is None and len(rows) > len(mirror):
        notes.append(f"{len(rows) - len(mirror)} record(s) not yet in {LEDGER_FILE} (added by the next run)")
    return Verdict(problem is None, len(rows), head, problem, tuple(notes))


PUBLISH_KEY = dg.AssetKey(["publish", "kpi_status"])


@dg.asset(group_name="alerting", deps=["kpi_alerts", PUBLISH_KEY], kinds={"duckdb"}, owners=[DATA_TEAM_OWNER])
def run_ledger(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource) -> dg.MaterializeResult:
    """Appends this run's record to the hash-chained run ledger (ledger.runs, mirrored to
    ledger.jsonl beside the warehouse): inputs with sha256, row counts, publication, checks and
    alerts. `kpiwatch verify-ledger` detects any record changed or deleted afterwards."""
    from pipelines.warehouse import connect

    settings = kpiwatch.settings()
    now = kpiwatch.run_now(context)
    with connect(settings.warehouse) as con:
        record = build_record(con, context.run_id, settings.catalog_dir)
        row = append_record(con, settings.warehouse, context.run_id, record, now)
    return dg.MaterializeResult(metadata={"seq": row["seq"], "hash": row["hash"],
                                          "new_batches": len(record["inputs"].get("batches", [])),
                                          "ledger_file": str(ledger_path(settings.warehouse))})
