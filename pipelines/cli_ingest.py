"""kpiwatch commands and run checks of the ingest stage, registered on the main CLI app by
`register`: `inspect FILE --source ID` (the onboarding tool: how one file reads through a
source's configuration, before anything lands), and `nothing_read` (after a run: the sources
that read none of their new files, which makes `kpiwatch run` exit 4)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer

# Exit codes as in pipelines/cli.py (README): 1 the file would be refused whole, 2 usage error.
EXIT_REFUSED, EXIT_CONFIG = 1, 2
# `kpiwatch run`: the run succeeded but a source read none of its new files.
EXIT_NOTHING_READ = 4


def nothing_read(con, run_id: str) -> list[str]:
    """One line per source that had new batches in the run and landed no row from any of them
    (or could not be read at all), with its refusals summarised once per cause and counted."""
    lines = []
    batches = con.execute(
        """select source_id, batch_id, rows_accepted, rows_quarantined from raw.batches
           where run_id = ? order by source_id, loaded_at""", [run_id]).fetchall()
    by_source: dict[str, list] = {}
    for sid, bid, accepted, quarantined in batches:
        by_source.setdefault(sid, []).append((bid, accepted, quarantined))
    for sid, items in by_source.items():
        if any(accepted for _, accepted, _ in items) or not any(q for _, _, q in items):
            continue
        causes: Counter = Counter()
        for bid, _, _ in items:
            row = con.execute(
                """select reason, coalesce(min(detail) filter (where row_number is null), min(detail))
                   from raw.quarantine where batch_id = ? group by reason order by count(*) desc limit 1""",
                [bid]).fetchone()
            if row:
                causes[(row[0], _cause(row[1]))] += 1
        summary = "; ".join(f"{reason} × {n} file(s) ({detail})" for (reason, detail), n in causes.most_common(5))
        lines.append(f"source {sid} read none of its {len(items)} new file(s): {summary}")
    failed = con.execute(
        """select source_id, observed from quality.check_results
           where run_id = ? and check_name = 'source_readable' and not success order by source_id""", [run_id]).fetchall()
    # A source with new batches is judged above (read some: not named; refused all: one line);
    # one with none that failed (a database that cannot be reached, a file that vanished) is
    # named once, with its first failure and how many more.
    unread: dict[str, list[str]] = {}
    for sid, observed in failed:
        if sid not in by_source:
            unread.setdefault(sid, []).append(observed)
    for sid, observed in unread.items():
        more = f" (and {len(observed) - 1} more)" if len(observed) > 1 else ""
        lines.append(f"source {sid} could not be read: {observed[0]}{more}")
    return lines


def unread_sources(warehouse: Path, run_id: str) -> list[str]:
    from pipelines.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        return nothing_read(con, run_id)


def _cause(detail: str | None) -> str:
    """A refusal's detail without the file name, so that one cause over many files counts once."""
    text = (detail or "").split(": ", 1)[-1] if detail and ": " in detail else (detail or "")
    return text[:160]


def register(app: typer.Typer) -> None:
    """Add the ingest stage's commands to the kpiwatch CLI."""

    @app.command()
    def inspect(
        files: list[Path] = typer.Argument(..., metavar="FILE...", help="Workbooks or files of the source (anywhere on disk); with several, one line each"),
        source: str = typer.Option(..., "--source", help="The id of the catalog source to read it as"),
        catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog directory [env KPIWATCH_CATALOG; default: the demo catalog]"),
        rows: int = typer.Option(5, "--rows", min=0, max=100, help="How many mapped rows to show"),
    ):
        """How FILE reads through source ID, before anything lands: the sheets found, the header
        resolved, the period found, the first mapped rows, what would be excluded by rule or
        quarantined and why. With several files (a whole series), one line per file. Exit 1 when
        a file would be refused whole."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from pipelines.catalog.loader import CatalogError, load_catalog
        from pipelines.config import Settings

        import sys

        out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        settings = Settings.from_env(catalog_dir=catalog).resolved()
        try:
            cat = load_catalog(settings.catalog_dir)
        except CatalogError as exc:
            err.print(f"[red]error:[/] catalog {settings.catalog_dir} is invalid:\n{escape(str(exc))}")
            raise typer.Exit(EXIT_CONFIG)
        if source not in cat.sources:
            err.print(f"[red]error:[/] no source {escape(source)!r} in {settings.catalog_dir} "
                      f"(sources: {escape(', '.join(sorted(cat.sources)))})")
            raise typer.Exit(EXIT_CONFIG)
        src = cat.sources[source]
        if src["kind"] not in ("csv", "excel", "parquet"):
            err.print(f"[red]error:[/] source {escape(source)} is a {src['kind']} source: inspect reads files")
            raise typer.Exit(EXIT_CONFIG)
        for file in files:
            if not file.is_file():
                err.print(f"[red]error:[/] file {escape(str(file))} not found")
                raise typer.Exit(EXIT_CONFIG)
        if len(files) == 1:
            raise typer.Exit(_inspect(out, files[0], src, cat, rows, Table, escape))
        refused = 0
        for file in files:
            ok, line = _one_line(file, src, cat)
            refused += not ok
            out.print(("" if ok else "[red]refused[/] ") + escape(f"{file.name}: {line}"))
        out.print(f"{len(files) - refused} of {len(files)} file(s) would be read, {refused} refused")
        raise typer.Exit(EXIT_REFUSED if refused else 0)


def _one_line(file: Path, src: dict, cat) -> tuple[bool, str]:
    """Whether one file would be read, and how, in one line (for a whole series)."""
    from pipelines.ingest.fastparse import parse_batch
    from pipelines.ingest.layout import BATCH_PERIOD, Refused, prepare_batch, rule_columns
    from pipelines.ingest.parsing import expand_wide, required_columns
    from pipelines.ingest.readers import read_file

    batch = read_file(file, src, file.name)
    if batch.error:
        return False, f"unreadable_source — {batch.error.removeprefix(file.name + ': ')}"
    try:
        prepared = prepare_batch(batch, src)
    except Refused as exc:
        return False, f"{exc.reason} — {exc.detail}"
    source = prepared.source
    needed = required_columns(source) + rule_columns(source.get("row_rules"))
    missing = [c for c in dict.fromkeys(needed) if c != BATCH_PERIOD and c not in batch.columns]
    if missing:
        return False, f"missing_column — {', '.join(map(repr, missing))}"
    numbered = prepared.numbered
    if source.get("wide"):
        numbered, _, source = expand_wide([rec for _, rec in numbered], source)
    kpis = {k: cat.kpis[k] for k in cat.kpis_of_source(src["id"])}
    _, parsed, rejects = parse_batch(numbered, source, kpis)
    unknown = sum(1 for k in parsed["kpi_id"] if k not in kpis)
    excluded = sum(len(v) for v in prepared.excluded.values())
    where = ", ".join(x for x in (f"sheet {batch.sheet!r}" if batch.sheet else "",
                                  f"layout {prepared.layout}" if prepared.layout else "",
                                  f"period {prepared.period_origin}" if prepared.period_origin else "") if x)
    return True, (f"{len(parsed['kpi_id']) - unknown} row(s) landed, {len(rejects) + unknown} quarantined, "
                  f"{excluded} excluded by rule" + (f" ({where})" if where else ""))


def _inspect(out, file: Path, src: dict, cat, n_rows: int, Table, escape) -> int:
    from pipelines.ingest.fastparse import parse_batch
    from pipelines.ingest.layout import BATCH_PERIOD, Prepared, Refused, headings_of, prepare_batch
    from pipelines.ingest.parsing import field_columns
    from pipelines.ingest.readers import column_letter, read_file, workbook_sheets

    out.print(f"[bold]{escape(file.name)}[/] as source [bold]{escape(src['id'])}[/] ({src['kind']})")
    if src["kind"] == "excel":
        sheets = workbook_sheets(file)
        out.print(f"sheets: {escape(', '.join(map(repr, sheets))) or '(none readable)'}")
    batch = read_file(file, src, file.name)
    if batch.error:
        out.print(f"[red]refused:[/] unreadable_source — {escape(batch.error)}")
        return EXIT_REFUSED
    if batch.sheet:
        out.print(f"sheet read: {escape(repr(batch.sheet))}")
    headings = headings_of(batch)
    out.print(f"header: {len(headings)} named columns, {len(batch.records)} data rows")
    try:
        prepared = prepare_batch(batch, src)
    except Refused as exc:
        out.print(f"[red]refused:[/] {exc.reason} — {escape(exc.detail)}")
        return EXIT_REFUSED
    assert isinstance(prepared, Prepared)
    if prepared.layout:
        out.print(f"layout: {escape(prepared.layout)}")
    position = {k: p for k, _, p in headings}
    mapping = Table(title="mapped columns", title_justify="left")
    for col in ("field", "column", "cell column"):
        mapping.add_column(col)
    missing = []
    fields = [(f, field_columns(spec)) for f, spec in prepared.source["columns"].items()]
    fields += [(f"wide: {kpi}", [c]) for c, kpi in (prepared.source.get("wide") or {}).get("kpi_columns", {}).items()]
    fields += [(f"row rule {r['name']}", [r[k]["column"] for k in ("exclude", "include") if k in r])
               for r in prepared.source.get("row_rules") or []]
    for field, names in fields:
        for name in names:
            if name == BATCH_PERIOD:
                mapping.add_row(field, "(the batch's period)", "")
                continue
            pos = position.get(name)
            if pos is None and name not in missing:
                missing.append(name)
            mapping.add_row(field, escape(name), column_letter(pos) if pos else "[red]missing[/]")
    out.print(mapping)
    if prepared.period_origin:
        out.print(f"period: {escape(prepared.period_origin)}")
    for rule, numbers in sorted(prepared.excluded.items()):
        out.print(f"excluded by rule {escape(rule)}: {len(numbers)} row(s)")
    if missing:
        out.print(f"[red]refused:[/] missing_column — {escape(', '.join(map(repr, missing)))} not in the header "
                  f"(found: {escape(', '.join(map(repr, batch.columns)))})")
        return EXIT_REFUSED
    kpis = {k: cat.kpis[k] for k in cat.kpis_of_source(src["id"])}
    numbered = prepared.numbered
    source = prepared.source
    if source.get("wide"):
        from pipelines.ingest.parsing import expand_wide

        numbered, _, source = expand_wide([rec for _, rec in numbered], source)
    got_rows, parsed, rejects = parse_batch(numbered, source, kpis)
    unknown = [i for i, k in enumerate(parsed["kpi_id"]) if k not in kpis]
    table = Table(title=f"first {min(n_rows, len(got_rows))} mapped rows", title_justify="left")
    for col in ("record", "kpi_id", "org_id", "period", "value", "numerator", "denominator"):
        table.add_column(col)
    for i in range(min(n_rows, len(got_rows))):
        table.add_row(str(got_rows[i]), *(escape("" if parsed[c][i] is None else str(parsed[c][i]))
                                          for c in ("kpi_id", "org_id", "period", "value", "numerator", "denominator")))
    out.print(table)
    reasons = Counter(r.reason for _, r in rejects)
    if unknown:
        reasons["unknown_kpi_id"] += len(unknown)
    for reason, count in reasons.most_common():
        first = next((f"record {n}: {r.detail}" for n, r in rejects if r.reason == reason), "")
        out.print(f"would be quarantined: {reason} × {count}" + (f" (e.g. {escape(first)})" if first else ""))
    out.print(f"{len(got_rows) - len(unknown)} row(s) would be landed, {sum(reasons.values())} quarantined, "
              f"{sum(len(v) for v in prepared.excluded.values())} excluded by rule "
              "(the source's GX suite and duplicate-key checks run when it lands)")
    return 0
