"""Bounds on what a source may make kpiwatch read (docs/sources.md, "Limits"), each configurable
per source with a safe default. Checked before or while the input is read, so that memory
never grows with a hostile input: a workbook whose sheets expand to gigabytes, a query that
waits on a lock forever. (HTTP responses are bounded in pipelines/ingest/http.py.)"""
from __future__ import annotations

import time
import zipfile
from pathlib import Path

from pipelines.ingest.readers import SourceError

# A workbook's XML, uncompressed (sheets, shared strings): a 3.9 MB .xlsx may expand to 1 GB.
DEFAULT_MAX_UNCOMPRESSED_MB = 256
# Cells in a workbook's sheets: reading holds every row of the sheet (about 200-600 bytes a cell).
DEFAULT_MAX_CELLS = 2_000_000
# A SQL source's statement (including waiting for a lock) may run this long.
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 300
# Rows fetched per round trip from a SQL source's server-side cursor.
DEFAULT_FETCH_ROWS = 10_000
CHUNK = 1 << 20


def check_workbook(path: Path, source: dict) -> None:
    """Refuse a zip-based workbook (.xlsx, .xlsm, .ods) whose XML is larger uncompressed than
    `max_uncompressed_mb`, or whose sheets hold more than `max_cells` cells. The declared sizes
    are checked first (instant); then the XML is decompressed as a stream, counting bytes and
    cells and stopping at the limit, since a zip's declared sizes can lie. Other files (.xls)
    are bounded by `max_file_mb`."""
    if not zipfile.is_zipfile(path):
        return
    max_bytes = int(source.get("max_uncompressed_mb", DEFAULT_MAX_UNCOMPRESSED_MB) * 1048576)
    max_cells = int(source.get("max_cells", DEFAULT_MAX_CELLS))
    limit_mb = f"{max_bytes / 1048576:g} MB"
    try:
        with zipfile.ZipFile(path) as z:
            members = [i for i in z.infolist() if i.filename.endswith(".xml")]
            declared = sum(i.file_size for i in members)
            if declared > max_bytes:
                raise SourceError(f"workbook expands to {declared / 1048576:,.0f} MB uncompressed, over the "
                                  f"{limit_mb} limit (max_uncompressed_mb)")
            total = cells = 0
            for info in members:
                sheet = info.filename.startswith(("xl/worksheets/", "content.xml"))
                tail = b""
                with z.open(info) as fh:
                    while chunk := fh.read(CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise SourceError(f"workbook expands to more than {limit_mb} uncompressed "
                                              "(max_uncompressed_mb); not read further")
                        if sheet:
                            text = tail + chunk
                            # A cell is <c ...> in .xlsx, <table:table-cell ...> in .ods.
                            cells += text.count(b"<c ") + text.count(b"<c>") + text.count(b"<table:table-cell")
                            cells -= tail.count(b"<c ") + tail.count(b"<c>") + tail.count(b"<table:table-cell")
                            tail = chunk[-20:]
                            if cells > max_cells:
                                raise SourceError(f"workbook has more than {max_cells:,} cells (max_cells); not read")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise SourceError(f"not a readable workbook ({type(exc).__name__})") from None


def limit_statement_time(conn, source: dict) -> None:
    """Bound the time of the source's statement on this connection (lock waits included)."""
    seconds = float(source.get("statement_timeout_seconds", DEFAULT_STATEMENT_TIMEOUT_SECONDS))
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql(f"set statement_timeout = {int(seconds * 1000)}")
    elif name in ("mysql", "mariadb"):
        version = str(conn.exec_driver_sql("select version()").scalar() or "")
        if "mariadb" in version.lower():
            conn.exec_driver_sql(f"set session max_statement_time = {seconds:.3f}")
        else:
            conn.exec_driver_sql(f"set session max_execution_time = {int(seconds * 1000)}")
    elif name == "sqlite":
        ends = time.monotonic() + seconds
        raw = conn.connection.driver_connection
        raw.set_progress_handler(lambda: 1 if time.monotonic() > ends else 0, 10_000)


def fetch_rows(source: dict) -> int:
    return int(source.get("fetch_rows", DEFAULT_FETCH_ROWS))
