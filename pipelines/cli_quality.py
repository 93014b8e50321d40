"""kpiwatch commands of the quality stage, registered on the main CLI app by `register`:
`report --audit` (the auditor's HTML report) and `explain KPI_ID PERIOD` (one figure's trail)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

# Exit codes as in pipelines/cli.py (README): 2 configuration / usage error, 3 warehouse busy.
EXIT_CONFIG, EXIT_BUSY = 2, 3


def _warehouse(path: Optional[Path]) -> Path:
    from pipelines.config import Settings

    return Settings.from_env(warehouse=path).resolved().warehouse


def _fail(message: str, code: int) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the kpiwatch CLI."""

    @app.command()
    def report(
        audit: bool = typer.Option(False, "--audit", help="The auditor's data-quality report (the only kind so far)"),
        out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write [default: audit-report.html beside the warehouse]"),
        warehouse: Optional[Path] = typer.Option(None, "--warehouse", help="DuckDB warehouse file [env KPIWATCH_WAREHOUSE]"),
        run_id: Optional[str] = typer.Option(None, "--run-id", help="Report on this run [default: the latest]"),
        data_docs: bool = typer.Option(True, "--data-docs/--no-data-docs", help="Also build GX Data Docs in <out dir>/data_docs/"),
    ):
        """Write a self-contained HTML audit report of one run: summary, publication decisions, every
        check that ran, quarantined rows, drift findings, alerts, and the evidence behind each published
        figure; GX Data Docs are built beside it and linked."""
        from pipelines.reporting.audit import AuditError, write_report
        from pipelines.warehouse import WarehouseBusy

        if not audit:
            _fail("say which report: --audit (the auditor's data-quality report)", EXIT_CONFIG)
        wh = _warehouse(warehouse)
        target = Path(out) if out else wh.parent / "audit-report.html"
        if target.suffix.lower() not in (".html", ".htm"):
            _fail(f"--out {target} should be an .html file", EXIT_CONFIG)
        try:
            path, docs = write_report(wh, target, run_id, data_docs)
        except WarehouseBusy as exc:
            _fail(str(exc), EXIT_BUSY)
        except (FileNotFoundError, AuditError) as exc:
            _fail(str(exc), EXIT_CONFIG)
        print(f"audit report: {path}")
        if docs:
            print(f"GX Data Docs: {docs}")

    @app.command()
    def explain(
        kpi_id: str = typer.Argument(..., help="KPI id, e.g. rtt_18_weeks"),
        period: str = typer.Argument(..., help="Period: YYYY-MM, YYYY-MM-01 or YYYY-Qn"),
        warehouse: Optional[Path] = typer.Option(None, "--warehouse", help="DuckDB warehouse file [env KPIWATCH_WAREHOUSE]"),
        fmt: str = typer.Option("text", "--format", help="text or json"),
    ):
        """Trace one KPI figure to its evidence: data trust and publication, computation, the source rows
        (file, sha256, batch, row numbers, run), superseded revisions, quarantined rows, checks, drift."""
        from pipelines.reporting.trail import TrailError, kpi_trail, parse_period, render_text, to_json
        from pipelines.warehouse import WarehouseBusy, connect

        if fmt not in ("text", "json"):
            _fail(f"--format must be 'text' or 'json', not {fmt!r}", EXIT_CONFIG)
        try:
            when = parse_period(period)
            with connect(_warehouse(warehouse), read_only=True) as con:
                trail = kpi_trail(con, kpi_id, when)
        except WarehouseBusy as exc:
            _fail(str(exc), EXIT_BUSY)
        except (FileNotFoundError, TrailError) as exc:
            _fail(str(exc), EXIT_CONFIG)
        sys.stdout.write((to_json(trail) if fmt == "json" else render_text(trail)) + "\n")
