"""Read a sql source (a table or a parameterised query) in batches of bounded size.

The result is read in a fixed order through a server-side cursor and cut into batches of
`batch_rows` rows (docs/sources.md, "Limits"), each landed before the next is read, so peak
memory follows a batch, not the source. The order makes the batches reproducible: a re-run
cuts the same result into the same batches with the same identities, so what was landed
(also by a run killed half-way) is skipped and nothing is doubled.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

from pipelines.ingest.readers import RawBatch, SourceError, _jsonable, _no_secrets, _watermark_value, sql_url

# Rows of a sql result landed as one batch: about 200 MB of memory while it is parsed,
# validated and landed (a 2-million-row result read whole peaked at 3.95 GB).
DEFAULT_BATCH_ROWS = 200_000


def batch_rows(source: dict) -> int:
    return int(source.get("batch_rows", DEFAULT_BATCH_ROWS))


def sql_statement(source: dict, watermark: str | None, ncolumns: int | None = None):
    """The statement for a sql source: its table or query, above the watermark if it has one,
    ordered by the watermark column (if any), then by every column of the result (`ncolumns`,
    by position), so that the same data always comes back in the same order. Identifiers come
    from the validated catalog and are quoted by SQLAlchemy; values are bound."""
    import sqlalchemy as sa

    if "query" in source:
        # Read as a subquery (to be ordered), where a closing ";" would be a syntax error.
        base = sa.text(source["query"].rstrip().rstrip(";")).bindparams(**source.get("params", {}))
        stmt = sa.select(sa.text("*")).select_from(base.columns().subquery("q"))
        wm_col = sa.column(source["watermark_column"]) if "watermark_column" in source else None
    else:
        stmt = sa.select(sa.text("*")).select_from(sa.table(source["table"]))
        wm_col = sa.column(source["watermark_column"]) if "watermark_column" in source else None
    if wm_col is not None:
        if watermark is not None:
            stmt = stmt.where(wm_col > sa.bindparam("watermark", _watermark_value(watermark)))
        stmt = stmt.order_by(wm_col)
    if ncolumns:
        # By position: a query's result may repeat a column name, which a name could not tell apart.
        stmt = stmt.order_by(*(sa.literal_column(str(i)) for i in range(1, ncolumns + 1)))
    return stmt


def _chunk_digest(columns: list[str], rows: list[dict], first_row: int) -> str:
    """A batch's identity: the sha256 of json.dumps([columns, [[value per column] per row]]) for
    the first batch of a result (the identity a whole result had when it was one batch), and of
    the same text after `rows <first_row>: ` for later ones (two equal slices at different
    places are different batches)."""
    prefix = "" if first_row == 1 else f"rows {first_row}: "
    digest = hashlib.sha256((prefix + "[" + json.dumps(columns) + ", [").encode())
    for i, rec in enumerate(rows):
        digest.update(((", " if i else "") + json.dumps([_jsonable(rec[c]) for c in columns])).encode())
    digest.update(b"]]")
    return digest.hexdigest()


def read_sql_batches(source: dict, data_dir: Path, environ: dict[str, str], seen_sha256: set[str],
                     watermark: str | None = None) -> Iterator[RawBatch]:
    """Yield the source's result in batches of at most `batch_rows` rows (a batch of a source
    with `watermark_column` is extended past that only to keep rows of one watermark value
    together: the next run reads above the last landed watermark). Batches landed before
    (`seen_sha256`) are skipped. A query failure raises SourceError; batches yielded before it
    stay landed, and the next run skips them."""
    import sqlalchemy as sa

    from pipelines.ingest.bounds import fetch_rows, limit_statement_time

    url = sql_url(source, data_dir, environ)
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise SourceError(f"source {source['id']}: unusable database URL ({type(exc).__name__}: {_no_secrets(str(exc), url)})") from None
    size = batch_rows(source)
    wm_col = source.get("watermark_column")
    try:
        with engine.connect() as conn:
            limit_statement_time(conn, source)  # a locked table or a runaway query ends, named
            if conn.dialect.name in ("mysql", "mariadb"):
                # The result streams while earlier batches land: the server must wait for us.
                conn.exec_driver_sql("set session net_write_timeout = 3600")
            probe = sql_statement(source, watermark)
            ncolumns = len(conn.execute(sa.select(sa.text("*")).select_from(probe.subquery("p")).limit(0)).keys())
            stmt = sql_statement(source, watermark, ncolumns)
            shown = str(stmt.compile(engine))
            if watermark is not None:
                shown += f"  -- watermark > {watermark}"
            result = conn.execution_options(stream_results=True, yield_per=fetch_rows(source)).execute(stmt)
            columns = list(result.keys())
            key = next((i for i, c in enumerate(columns) if wm_col and c.lower() == wm_col.lower()), None)
            it = iter(result)
            pending = next(it, None)
            if pending is None:
                if watermark is not None:
                    return  # nothing new since the last watermark
                sha = _chunk_digest(columns, [], 1)
                if sha not in seen_sha256:  # named downstream: the query returned no rows
                    yield RawBatch(source["id"], None, sha, shown, columns, [], watermark=watermark)
                return
            first_row = 1
            while pending is not None:
                rows = [dict(zip(columns, pending))]
                last_wm = pending[key] if key is not None else None
                pending = next(it, None)
                # Full at `size` rows, but one watermark value stays in one batch (the next run
                # reads above the last landed watermark, and would skip the rest of a split value).
                while pending is not None and (len(rows) < size or (key is not None and pending[key] == last_wm)):
                    rows.append(dict(zip(columns, pending)))
                    last_wm = pending[key] if key is not None else None
                    pending = next(it, None)
                whole = first_row == 1 and pending is None
                part = shown if whole else \
                    f"{shown}  -- rows {first_row:,}-{first_row + len(rows) - 1:,} of the ordered result"
                sha = _chunk_digest(columns, rows, first_row)
                first_row += len(rows)
                if sha in seen_sha256:
                    continue  # landed before (by an earlier run, or one killed half-way)
                new_wm = watermark
                if key is not None:
                    values = [r[columns[key]] for r in rows if r[columns[key]] is not None]
                    new_wm = str(_jsonable(max(values))) if values else watermark
                batch = RawBatch(source["id"], None, sha, part, columns, rows, watermark=new_wm)
                del rows
                yield batch
                del batch
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).splitlines()[0] if str(orig) else ""
        raise SourceError(f"source {source['id']}: query failed: {type(orig).__name__}: {_no_secrets(first, url)}") from None
    finally:
        engine.dispose()
