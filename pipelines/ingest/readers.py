"""Read a source's new batches as raw records (strings), with lineage.

A batch is one file (CSV, Excel) or one query result (SQL). Readers do not interpret values:
parsing and validation come after, so that every input row is accounted for.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


class SourceError(Exception):
    """A source that cannot be read at all (named in the message)."""


@dataclass
class RawBatch:
    source_id: str
    source_file: str | None
    sha256: str
    query: str | None
    columns: list[str]
    records: list[dict[str, object]] = field(default_factory=list)  # row_number -> record (1-based)
    error: str | None = None  # set when the whole batch is unusable (e.g. unreadable file)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_glob(data_dir: Path, pattern: str) -> list[Path]:
    base = data_dir.resolve()
    out = []
    for p in sorted(base.glob(pattern)):
        rp = p.resolve()
        if p.is_file() and base in rp.parents:  # never follow a path out of the data directory
            out.append(p)
    return out


def source_files(source: dict, data_dir: Path) -> list[Path]:
    return _safe_glob(Path(data_dir), source["path"])


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, object]]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return [], []
    header = [h.strip() for h in rows[0]]
    records = []
    for values in rows[1:]:
        if not any(v.strip() for v in values):
            continue
        rec = {h: (values[i] if i < len(values) else None) for i, h in enumerate(header)}
        if len(values) > len(header):
            rec["__extra__"] = values[len(header):]
        records.append(rec)
    return header, records


def _read_excel(path: Path, sheet: str | None, header_row: int) -> tuple[list[str], list[dict[str, object]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise SourceError(f"{path.name}: not a readable .xlsx workbook ({type(exc).__name__})") from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise SourceError(f"{path.name}: sheet {sheet!r} not found (sheets: {', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        rows = list(ws.iter_rows(values_only=True))
    finally:
        wb.close()
    if len(rows) < header_row:
        return [], []
    header = [str(h).strip() if h is not None else "" for h in rows[header_row - 1]]
    records = []
    for values in rows[header_row:]:
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        records.append({h: values[i] if i < len(values) else None for i, h in enumerate(header) if h})
    return header, records


def read_file_batches(source: dict, data_dir: Path, seen_sha256: set[str]) -> Iterator[RawBatch]:
    """Yield one batch per file in the source's drop folder not ingested before (by sha256)."""
    for path in source_files(source, data_dir):
        sha = _sha256_file(path)
        if sha in seen_sha256:
            continue
        rel = str(path.resolve().relative_to(Path(data_dir).resolve()))
        batch = RawBatch(source["id"], rel, sha, None, [])
        try:
            if source["kind"] == "csv":
                batch.columns, batch.records = _read_csv(path)
            else:
                batch.columns, batch.records = _read_excel(path, source.get("sheet"), source.get("header_row", 1))
        except SourceError as exc:
            batch.error = str(exc)
        yield batch


def sql_url(source: dict, data_dir: Path, environ: dict[str, str]) -> str:
    if "sqlite_path" in source:
        path = (Path(data_dir) / source["sqlite_path"]).resolve()
        if Path(data_dir).resolve() not in path.parents:
            raise SourceError(f"source {source['id']}: sqlite_path leaves the data directory")
        if not path.exists():
            raise SourceError(f"source {source['id']}: database file {source['sqlite_path']} not found in {data_dir}")
        return f"sqlite:///{path}"
    var = source["url_env"]
    url = environ.get(var)
    if not url:
        raise SourceError(f"source {source['id']}: environment variable {var} (its database URL) is not set")
    return url


def read_sql_batch(source: dict, data_dir: Path, environ: dict[str, str], seen_sha256: set[str]) -> Iterator[RawBatch]:
    """Read the source table through SQLAlchemy; the result's content hash identifies the batch."""
    import sqlalchemy as sa

    url = sql_url(source, data_dir, environ)
    engine = sa.create_engine(url)
    try:
        # The table name is validated by the catalog schema and quoted by SQLAlchemy.
        table = sa.table(source["table"])
        query = sa.select(sa.text("*")).select_from(table)
        with engine.connect() as conn:
            result = conn.execute(query)
            columns = list(result.keys())
            rows = [dict(zip(columns, r)) for r in result]
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"source {source['id']}: query failed: {type(exc.orig or exc).__name__}: {str(exc.orig or exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    canonical = json.dumps([columns, [[_jsonable(r[c]) for c in columns] for r in rows]], sort_keys=False)
    sha = hashlib.sha256(canonical.encode()).hexdigest()
    if sha in seen_sha256:
        return
    shown = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    yield RawBatch(source["id"], None, sha, shown, columns, rows)


def _jsonable(v):
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v
