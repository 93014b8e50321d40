"""Read a source's new batches as raw records (strings), with lineage.

A batch is one file (CSV, Excel) or one query result (SQL). Readers do not interpret values:
parsing and validation come after, so that every input row is accounted for.
"""
from __future__ import annotations

import csv
import io
import datetime as dt
import decimal
import hashlib
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
    watermark: str | None = None  # sql: the highest watermark value in this batch
    cell_rows: dict[int, int] | None = None  # wide sources: cell number -> file row number


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


ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # utf-8-sig also reads plain UTF-8


def decode(raw: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Text and the encoding used: the configured one, else UTF-8 (with or without BOM), else cp1252."""
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise SourceError(f"not valid {encoding} text (byte {exc.start})") from None
    if b"\x00" in raw[:4096]:
        raise SourceError("binary content, not a text file")
    for enc in ENCODINGS[:2]:
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def _read_csv(path: Path, source: dict) -> tuple[list[str], list[dict[str, object]]]:
    text, _ = decode(path.read_bytes(), source.get("encoding"))
    delimiter = source.get("delimiter")
    if not delimiter:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows:
        return [], []
    header = [h.strip() for h in rows[0]]
    _no_duplicate_columns(header)
    records = []
    for values in rows[1:]:
        if not any(v.strip() for v in values):
            continue
        rec = {h: (values[i] if i < len(values) else None) for i, h in enumerate(header)}
        if len(values) > len(header):
            rec["__extra__"] = values[len(header):]
        records.append(rec)
    return header, records


def _no_duplicate_columns(header: list[str]) -> None:
    """Two columns with one name make every mapped value ambiguous: refuse the file."""
    seen, dups = set(), []
    for h in header:
        if h and h in seen and h not in dups:
            dups.append(h)
        seen.add(h)
    if dups:
        raise SourceError(f"duplicate column name(s) {', '.join(map(repr, dups))} in the header")


def _find_header(rows: list[tuple], source: dict) -> int:
    """0-based index of the header row: `header_row`, or the first row with `header_label`."""
    label = source.get("header_label")
    if label:
        for i, row in enumerate(rows[:50]):
            if any(isinstance(v, str) and v.strip() == label for v in row):
                return i
        raise SourceError(f"no row with the header label {label!r} in the first 50 rows")
    return source.get("header_row", 1) - 1


def _sheet_rows_openpyxl(path: Path, sheet) -> list[tuple]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise SourceError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    try:
        ws = _pick_sheet(wb.sheetnames, sheet, lambda name: wb[name])
        return list(ws.iter_rows(values_only=True))
    finally:
        wb.close()


def _sheet_rows_calamine(path: Path, sheet) -> list[tuple]:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for broken files
        raise SourceError(f"not a readable workbook ({type(exc).__name__})") from None
    ws = _pick_sheet(wb.sheet_names, sheet, wb.get_sheet_by_name)
    return [tuple(None if v == "" else v for v in row) for row in ws.to_python(skip_empty_area=False)]


def _pick_sheet(names: list[str], sheet, get):
    if sheet is None:
        sheet = 1
    if isinstance(sheet, int):
        if not 1 <= sheet <= len(names):
            raise SourceError(f"sheet {sheet} not found: the workbook has {len(names)} sheet(s)")
        return get(names[sheet - 1])
    if sheet not in names:
        raise SourceError(f"sheet {sheet!r} not found (sheets: {', '.join(names)})")
    return get(sheet)


def _read_excel(path: Path, source: dict) -> tuple[list[str], list[dict[str, object]]]:
    """Excel returns: .xlsx with openpyxl; legacy .xls and .ods with calamine."""
    sheet = source.get("sheet")
    if path.suffix.lower() == ".xlsx":
        rows = _sheet_rows_openpyxl(path, sheet)
    else:
        rows = _sheet_rows_calamine(path, sheet)
    if not rows:
        return [], []
    h = _find_header(rows, source)
    if len(rows) <= h:
        return [], []
    header = [str(v).strip() if v is not None else "" for v in rows[h]]
    _no_duplicate_columns(header)
    records = []
    for values in rows[h + 1:]:
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        records.append({c: values[i] if i < len(values) else None for i, c in enumerate(header) if c})
    return [c for c in header if c], records


def _read_parquet(path: Path) -> tuple[list[str], list[dict[str, object]]]:
    """Parquet files keep their column types: numbers arrive as numbers, dates as dates."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for broken files
        raise SourceError(f"not a readable Parquet file ({type(exc).__name__})") from None
    header = list(table.column_names)
    _no_duplicate_columns(header)
    return header, table.to_pylist()


def read_file_batches(source: dict, data_dir: Path, seen_sha256: set[str],
                      paths: list[Path] | None = None) -> Iterator[RawBatch]:
    """Yield one batch per file in the source's drop folder not ingested before (by sha256);
    with `paths`, of those files only (landing reads one file at a time, each contained)."""
    for path in source_files(source, data_dir) if paths is None else paths:
        sha = _sha256_file(path)
        if sha in seen_sha256:
            continue
        rel = str(path.resolve().relative_to(Path(data_dir).resolve()))
        batch = RawBatch(source["id"], rel, sha, None, [])
        limit = source.get("max_file_mb")
        try:
            size = path.stat().st_size
            if limit and size > limit * 1024 * 1024:
                shown = f"{size / 1048576:.1f} MB" if size >= 1048576 else f"{size:,} bytes"
                raise SourceError(f"file is {shown}, over the {limit} MB limit")
            if source["kind"] == "csv":
                batch.columns, batch.records = _read_csv(path, source)
            elif source["kind"] == "parquet":
                batch.columns, batch.records = _read_parquet(path)
            else:
                batch.columns, batch.records = _read_excel(path, source)
        except SourceError as exc:
            batch.error = f"{rel}: {exc}"
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


def _watermark_value(text: str):
    """Watermarks are stored as text; give the database back a number or a date where they were one."""
    for conv in (int, float, dt.datetime.fromisoformat):
        try:
            return conv(text)
        except ValueError:
            continue
    return text


def _no_secrets(text: str, url: str) -> str:
    """Remove a database URL's password (and the URL itself) from an error text."""
    try:
        import sqlalchemy as sa

        password = sa.engine.make_url(url).password
    except Exception:  # an unparseable URL: hide it whole
        password = None
    out = text.replace(url, "<database url>")
    return out.replace(password, "***") if password else out


def _jsonable(v):
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def read_batches(source: dict, data_dir: Path, environ: dict[str, str], seen_sha256: set[str],
                 watermark: str | None = None) -> Iterator[RawBatch]:
    """New batches of any source kind (files not seen before, a changed query result, new pages)."""
    kind = source["kind"]
    if kind in ("csv", "excel", "parquet"):
        return read_file_batches(source, data_dir, seen_sha256)
    if kind == "sql":
        from pipelines.ingest.sql import read_sql_batches

        return read_sql_batches(source, data_dir, environ, seen_sha256, watermark)
    if kind == "http":
        from pipelines.ingest.http import read_http_batch

        return read_http_batch(source, environ, seen_sha256)
    raise SourceError(f"source {source['id']}: unknown kind {kind!r}")
