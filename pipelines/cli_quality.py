"""kpiwatch commands of the reporting and quality stages, registered on the main CLI app by
`register`: `report` (the owner's scorecard; `--audit` the auditor's HTML report) and
`explain KPI_ID PERIOD` (one figure's trail)."""
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

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _printable(value):
    """Every string inside `value` (dicts, lists) as one printable line, uncapped."""
    from pipelines.text import one_line

    if isinstance(value, str):
        return one_line(value, None)
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_printable(v) for v in value)
    return value


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the kpiwatch CLI."""

    @app.command()
    def report(
        audit: bool = typer.Option(False, "--audit", help="The auditor's data-quality report instead of the owner's scorecard"),
        out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write [default: scorecard.html, scorecard-as-of-DATE.html or audit-report.html in <warehouse dir>/reports/]"),
        warehouse: Optional[Path] = typer.Option(None, "--warehouse", help="DuckDB warehouse file [env KPIWATCH_WAREHOUSE]"),
        as_of: Optional[str] = typer.Option(None, "--as-of", help="Scorecard as known on this date YYYY-MM-DD (from the scorecards kept by earlier runs)"),
        run_id: Optional[str] = typer.Option(None, "--run-id", help="Audit report of this run [default: the latest]"),
        data_docs: bool = typer.Option(True, "--data-docs/--no-data-docs", help="Audit report: also build GX Data Docs in <out dir>/data_docs/"),
    ):
        """Write a self-contained HTML report. By default the owner's scorecard: per department a tile
        per KPI (chart, status and data trust in words, latest value and change), a milestone timeline
        and a roll-up; `--as-of DATE` shows it as it was known on that date. With `--audit`, the
        auditor's report of one run: summary, publication decisions, every check that ran, quarantined
        rows, drift findings, alerts, and the evidence behind each published figure, with GX Data Docs."""
        import datetime as dt

        from pipelines.warehouse import WarehouseBusy

        day = None
        if as_of:
            try:
                day = dt.date.fromisoformat(as_of)
            except ValueError:
                _fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)", EXIT_CONFIG)
        wh = _warehouse(warehouse)
        default = "audit-report.html" if audit else (f"scorecard-as-of-{day}.html" if day else "scorecard.html")
        target = Path(out) if out else wh.parent / "reports" / default
        if target.suffix.lower() not in (".html", ".htm"):
            _fail(f"--out {target} should be an .html file", EXIT_CONFIG)
        if audit and as_of:
            _fail("--as-of is for the scorecard; the audit report takes --run-id", EXIT_CONFIG)
        if not audit and run_id:
            _fail("--run-id is for the audit report (--audit); the scorecard takes --as-of", EXIT_CONFIG)
        if audit:
            from pipelines.reporting.audit import AuditError, write_report

            try:
                path, docs = write_report(wh, target, run_id, data_docs)
            except WarehouseBusy as exc:
                _fail(str(exc), EXIT_BUSY)
            except (FileNotFoundError, AuditError) as exc:
                _fail(str(exc), EXIT_CONFIG)
            except OSError as exc:
                _fail(f"cannot write {target}: {exc.strerror or exc}", EXIT_CONFIG)
            print(f"audit report: {path}")
            if docs:
                print(f"GX Data Docs: {docs}")
            return
        from pipelines.reporting.files import ReportWriteError, write_text_atomic
        from pipelines.reporting.scorecard import NoSnapshot, render, scorecard_data, snapshot_as_of
        from pipelines.warehouse import connect

        try:
            with connect(wh, read_only=True) as con:
                if day:
                    data, kept = snapshot_as_of(con, day)
                    html = render(data, known_at={**kept, "asked": day})
                else:
                    html = render(scorecard_data(con))
        except WarehouseBusy as exc:
            _fail(str(exc), EXIT_BUSY)
        except (NoSnapshot, FileNotFoundError) as exc:  # FileNotFoundError: no DuckDB file yet (connect says so)
            _fail(str(exc), EXIT_CONFIG)
        except Exception as exc:  # noqa: BLE001 — e.g. the marts do not exist yet
            if "does not exist" in str(exc):
                _fail(f"the warehouse {wh} has no marts yet: run `kpiwatch run` first", EXIT_CONFIG)
            raise
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(target, html)
        except ReportWriteError as exc:  # says what, and that nothing partial was left
            _fail(exc.strerror, EXIT_CONFIG)
        except OSError as exc:
            _fail(f"could not write {target}: {exc.strerror or exc}", EXIT_CONFIG)
        print(f"scorecard: {target}" + (f" (as known on {day})" if day else ""))

    @app.command()
    def explain(
        kpi_id: str = typer.Argument(..., help="KPI id, e.g. rtt_18_weeks"),
        period: str = typer.Argument(..., help="Period in the KPI's frequency: YYYY-MM, YYYY-Qn, YYYY/YY Qn, YYYY-Www, YYYY, YYYY/YY"),
        warehouse: Optional[Path] = typer.Option(None, "--warehouse", help="DuckDB warehouse file [env KPIWATCH_WAREHOUSE]"),
        fmt: str = typer.Option("text", "--format", help="text or json"),
    ):
        """Trace one KPI figure to its evidence: data trust and publication, computation, the source rows
        (file, sha256, batch, row numbers, run), superseded revisions, quarantined rows, checks, drift."""
        from pipelines.reporting.trail import TrailError, kpi_trail, render_text, to_json
        from pipelines.warehouse import WarehouseBusy, connect

        if fmt not in ("text", "json"):
            _fail(f"--format must be 'text' or 'json', not {fmt!r}", EXIT_CONFIG)
        try:
            with connect(_warehouse(warehouse), read_only=True) as con:
                trail = kpi_trail(con, kpi_id, period)  # parsed in the KPI's frequency
        except WarehouseBusy as exc:
            _fail(str(exc), EXIT_BUSY)
        except (FileNotFoundError, TrailError) as exc:
            _fail(str(exc), EXIT_CONFIG)
        # In text, every value from the data is one printable line (a file name holding a newline
        # must not forge a line of the evidence); JSON escapes them itself.
        sys.stdout.write((to_json(trail) if fmt == "json" else render_text(_printable(trail))) + "\n")
