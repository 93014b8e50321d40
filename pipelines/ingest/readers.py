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
import re
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
    # excel: the sheet read, the rows above the header (title block), and per column its key
    # in the records ("Group / Column" under a header of several rows), its own heading and its
    # 1-based position (pipelines/ingest/layout.py resolves mapped names, letters, positions).
    sheet: str | None = None
    top_rows: list[tuple] = field(default_factory=list)
    headings: list[tuple[str, str, int]] | None = None
    # set while landing (pipelines/ingest/layout.py): rows left out per row rule (record
    # numbers), the declared layout used, where the batch's period came from.
    excluded: dict[str, list[int]] = field(default_factory=dict)
    layout: str | None = None
    period_origin: str | None = None
    sheet_rows: list[int] | None = None  # excel: the sheet row of each record (lineage as the sheet shows it)
    # set while landing: the KPI of each parsed or rejected record whose KPI is known (a shared
    # source's rows are accounted to their KPI's department)
    row_kpis: dict[int, str] = field(default_factory=dict)


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
    records: list[dict[str, object]] = []
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
    """0-based index of the header row: `header_row`, or the first row with `header_label`.
    Under a header of several rows (`header_rows`) this is its last row, the column headings."""
    label = source.get("header_label")
    if label:
        found = _label_row(rows, label)
        if found is None:
            raise SourceError(f"no row with the header label {label!r} in the first 50 rows")
        return found
    return source.get("header_row", source.get("header_rows", 1)) - 1


def _label_row(rows, label: str) -> int | None:
    for i, row in enumerate(rows[:50]):
        if any(isinstance(v, str) and v.strip() == label for v in row):
            return i
    return None


def _sheet_rows_openpyxl(path: Path, sheet) -> tuple[str, list[tuple]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise SourceError(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    try:
        name = _pick_sheet(wb.sheetnames, sheet, lambda n: list(wb[n].iter_rows(max_row=50, values_only=True)))
        return name, list(wb[name].iter_rows(values_only=True))
    finally:
        wb.close()


def _sheet_rows_calamine(path: Path, sheet) -> tuple[str, list[tuple]]:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for broken files
        raise SourceError(f"not a readable workbook ({type(exc).__name__})") from None

    def rows(n, limit=None):
        return [tuple(None if v == "" else v for v in row)
                for row in wb.get_sheet_by_name(n).to_python(skip_empty_area=False, nrows=limit)]

    name = _pick_sheet(wb.sheet_names, sheet, lambda n: rows(n, 50))
    return name, rows(name)


def _pick_sheet(names: list[str], sheet, top_rows) -> str:
    """The name of the sheet to read: by position or name, the first present of a list, the
    first whose name matches a pattern, or the first whose top rows hold a header label.
    When none fits, the message lists the workbook's sheets."""
    listed = ", ".join(map(repr, names))
    if sheet is None:
        sheet = 1
    if isinstance(sheet, int):
        if not 1 <= sheet <= len(names):
            raise SourceError(f"sheet {sheet} not found: the workbook has {len(names)} sheet(s) ({listed})")
        return names[sheet - 1]
    if isinstance(sheet, str):
        if sheet not in names:
            raise SourceError(f"sheet {sheet!r} not found (sheets: {listed})")
        return sheet
    if isinstance(sheet, list):
        found = next((n for n in sheet if n in names), None)
        if found is None:
            raise SourceError(f"none of the sheets {', '.join(map(repr, sheet))} found (sheets: {listed})")
        return found
    if "pattern" in sheet:
        rx = re.compile(sheet["pattern"])
        found = next((n for n in names if rx.fullmatch(n)), None)
        if found is None:
            raise SourceError(f"no sheet name matches the pattern '{sheet['pattern']}' (sheets: {listed})")
        return found
    label = sheet["header_contains"]
    for n in names:
        if _label_row(top_rows(n), label) is not None:
            return n
    raise SourceError(f"no sheet has a cell {label!r} in its first 50 rows (sheets: {listed})")


def column_letter(position: int) -> str:
    """1 -> A, 27 -> AA: the column as the spreadsheet shows it."""
    out = ""
    while position:
        position, rem = divmod(position - 1, 26)
        out = chr(65 + rem) + out
    return out


def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())


def header_keys(rows: list[tuple], last: int, depth: int) -> list[tuple[str, str, int]]:
    """(key, heading, position) per named column of a header whose last row is `last` and which
    spans `depth` rows. A group heading (a merged cell shows its text in its first column only)
    stands over the columns to its right up to the next group heading; the key joins the group
    headings and the column's own heading with " / "."""
    width = max(len(r) for r in rows[max(0, last - depth + 1):last + 1])
    groups: list[list[str]] = []
    for g in range(last - depth + 1, last):
        row = rows[g] if g >= 0 else ()
        current, filled = "", []
        for i in range(width):
            text = _cell_text(row[i]) if i < len(row) else ""
            current = text or current
            filled.append(current)
        groups.append(filled)
    out = []
    for i in range(width):
        heading = _cell_text(rows[last][i]) if i < len(rows[last]) else ""
        if not heading:
            continue
        parts = [g[i] for g in groups if g[i]] + [heading]
        out.append((" / ".join(parts), heading, i + 1))
    return out


def _no_duplicate_keys(headings: list[tuple[str, str, int]]) -> None:
    """Two columns with one name (group headings included) make a mapped value ambiguous."""
    where: dict[str, list[int]] = {}
    for key, _, pos in headings:
        where.setdefault(key, []).append(pos)
    dups = {k: p for k, p in where.items() if len(p) > 1}
    if dups:
        named = "; ".join(f"{k!r} in columns {', '.join(column_letter(p) for p in ps)}" for k, ps in dups.items())
        raise SourceError(f"duplicate column name(s) in the header: {named} "
                          "(set header_rows so that their group headings tell them apart)")


def _read_excel(path: Path, source: dict) -> RawBatch:
    """Excel returns: .xlsx with openpyxl; legacy .xls and .ods with calamine. The columns, the
    records (keyed by heading), the sheet read, the title block and the headings."""
    sheet = source.get("sheet")
    if path.suffix.lower() == ".xlsx":
        name, rows = _sheet_rows_openpyxl(path, sheet)
    else:
        name, rows = _sheet_rows_calamine(path, sheet)
    out = RawBatch(source["id"], None, "", None, [], sheet=name)
    if not rows:
        return out
    try:
        h = _find_header(rows, source)
    except SourceError as exc:
        raise SourceError(f"sheet {name!r}: {exc}") from None
    if len(rows) <= h:
        out.top_rows = rows
        return out
    out.top_rows = rows[:h]
    headings = header_keys(rows, h, source.get("header_rows", 1))
    _no_duplicate_keys(headings)
    out.headings = headings
    out.columns = [k for k, _, _ in headings]
    out.sheet_rows = []
    for sheet_row, values in enumerate(rows[h + 1:], start=h + 2):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        out.records.append({k: values[p - 1] if p - 1 < len(values) else None for k, _, p in headings})
        out.sheet_rows.append(sheet_row)
    return out


def row_map(sheet_rows: list[int]) -> str:
    """Record numbers to sheet rows, compactly: "1:16:212;213:230:40" — from record 1, sheet
    row 16, for 212 records; blank rows in the sheet start a new run."""
    runs: list[list[int]] = []
    for record, row in enumerate(sheet_rows, start=1):
        if runs and row == runs[-1][1] + runs[-1][2]:
            runs[-1][2] += 1
        else:
            runs.append([record, row, 1])
    return ";".join(f"{a}:{b}:{n}" for a, b, n in runs)


def sheet_row_of(mapping: str | None, record: int | None) -> int | None:
    """The sheet row of a record number, from `row_map`'s text (None when not recorded)."""
    if not mapping or record is None:
        return None
    for run in mapping.split(";"):
        first, row, n = (int(x) for x in run.split(":"))
        if first <= record < first + n:
            return row + record - first
    return None


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
    """Yield one batch per file in the source's drop folder not ingested before (by sha256): in
    period order when the period is in the file name (`AE-Dec14` before `AE-Jan15`), else in
    name order; with `paths`, of those files only, in the order given (landing reads one file
    at a time, each contained, in `files_in_order`)."""
    for path in files_in_order(source, data_dir) if paths is None else paths:
        sha = _sha256_file(path)
        if sha in seen_sha256:
            continue
        seen_sha256 = seen_sha256 | {sha}  # a second copy of a file in the drop folder is the same batch
        rel = str(path.resolve().relative_to(Path(data_dir).resolve()))
        yield read_file(path, source, rel, sha)


def files_in_order(source: dict, data_dir: Path) -> list[Path]:
    """The source's files in the order they are read: by the period in their names, else by name."""
    return _period_order(source, source_files(source, data_dir))


def _period_order(source: dict, paths: list[Path]) -> list[Path]:
    spec = source["columns"].get("period")
    if not (isinstance(spec, dict) and "file_name" in spec):
        return paths
    from pipelines.ingest.layout import Refused, file_name_period
    from pipelines.ingest.parsing import Rejected, parse_period

    def key(path: Path):
        try:
            return (0, parse_period(file_name_period(spec, path.name), None, spec.get("format")), path.name)
        except (Refused, Rejected):
            return (1, None, path.name)  # no period in its name: after the others, refused when read

    return sorted(paths, key=lambda p: (key(p)[0], key(p)[1] or dt.date.min, key(p)[2]))


def read_file(path: Path, source: dict, rel: str, sha: str | None = None) -> RawBatch:
    """One file of a file source as a raw batch; a file that cannot be read is a batch whose
    `error` names the file and the problem."""
    batch = RawBatch(source["id"], rel, sha or _sha256_file(path), None, [])
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
            read = _read_excel(path, source)
            batch.columns, batch.records = read.columns, read.records
            batch.sheet, batch.top_rows, batch.headings = read.sheet, read.top_rows, read.headings
            batch.sheet_rows = read.sheet_rows
    except SourceError as exc:
        batch.error = f"{rel}: {exc}"
    return batch


def workbook_sheets(path: Path) -> list[str]:
    """The sheet names of a workbook (for `kpiwatch inspect`); [] when it cannot be opened."""
    try:
        if path.suffix.lower() == ".xlsx":
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            try:
                return list(wb.sheetnames)
            finally:
                wb.close()
        from python_calamine import CalamineWorkbook

        return list(CalamineWorkbook.from_path(str(path)).sheet_names)
    except Exception:  # a broken workbook: the reader names the problem
        return []


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
