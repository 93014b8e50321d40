"""The kpiwatch command line. Heavy libraries (dagster, dbt, GX) are imported inside commands."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.config import Settings
from pipelines.text import one_line

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="kpiwatch: watch a data roadmap's KPIs, their data quality, targets and milestones.")
# Outside a terminal (logs, CI, pipes) rich would wrap at 80 columns: use a wide page instead.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, width=_WIDTH, soft_wrap=False)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160, soft_wrap=True)

# Exit codes a scheduler can act on (documented in the README).
EXIT_OK, EXIT_RUN_FAILED, EXIT_CONFIG, EXIT_BUSY = 0, 1, 2, 3
# The data run succeeded, but alerts could not be delivered (Slack down, a rejected token): they
# are held in the outbox and go out with the next run that reaches Slack.
EXIT_ALERTS_HELD = 5  # 4 is a source that read none of its new files (cli_ingest)
# The run was stopped by SIGTERM or SIGINT (128 + SIGINT, as a shell reports Ctrl-C).
EXIT_STOPPED = 130

STATUS_STYLE = {"green": "green", "amber": "yellow", "red": "red", "grey": "dim"}
TRUST_STYLE = {"trusted": "green", "stale": "yellow", "failed_checks": "red", "anomalous": "magenta"}

CatalogOpt = typer.Option(None, "--catalog", help="Catalog directory [env KPIWATCH_CATALOG; default: the demo catalog]")
DataOpt = typer.Option(None, "--data-dir", help="Source drop folders [env KPIWATCH_DATA_DIR; default: demo-data/]")
WarehouseOpt = typer.Option(None, "--warehouse", help="DuckDB warehouse file [env KPIWATCH_WAREHOUSE; default: warehouse/kpiwatch.duckdb]")
AsOfOpt = typer.Option(None, "--as-of", help="Reporting date YYYY-MM-DD [env KPIWATCH_AS_OF; default: the catalog's as_of, else today]")


TargetOpt = typer.Option(None, "--target", help="Warehouse: duckdb or postgres [env KPIWATCH_TARGET; default: duckdb]. "
                         "postgres reads KPIWATCH_PG_HOST/PORT/USER/PASSWORD/DBNAME")


def _settings(catalog, data_dir, warehouse, as_of=None, target=None) -> Settings:
    from pipelines.warehouse import WarehouseConfigError

    try:
        as_of_date = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        err.print(f"[red]error:[/] --as-of {as_of!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(EXIT_CONFIG)
    try:
        s = Settings.from_env(catalog_dir=catalog, data_dir=data_dir, warehouse=warehouse, as_of=as_of_date,
                              target=target).resolved()
    except WarehouseConfigError as exc:
        err.print(f"[red]error:[/] {exc}".replace("KPIWATCH_TARGET:", "--target / KPIWATCH_TARGET:"))
        raise typer.Exit(EXIT_CONFIG)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}", markup=False)
        raise typer.Exit(EXIT_CONFIG)
    os.environ["KPIWATCH_TARGET"] = s.target  # every connection of this process uses it
    return s


@app.callback()
def _global(target: Optional[str] = TargetOpt):
    """kpiwatch: watch a data roadmap's KPIs, their data quality, targets and milestones."""
    if target is not None:
        from pipelines.warehouse import WarehouseConfigError, current_target

        try:
            os.environ["KPIWATCH_TARGET"] = current_target({"KPIWATCH_TARGET": target})
        except WarehouseConfigError as exc:
            err.print(f"[red]error:[/] {exc}".replace("KPIWATCH_TARGET:", "--target:"))
            raise typer.Exit(EXIT_CONFIG)


def _load_catalog_or_exit(catalog_dir: Path):
    from pipelines.catalog.loader import CatalogError, load_catalog

    try:
        return load_catalog(catalog_dir)
    except CatalogError as exc:
        err.print(f"[red]catalog {catalog_dir} has {len(exc.problems)} problem(s):[/]")
        for p in exc.problems:
            err.print(f"  {p}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_CONFIG)


@app.command()
def validate(catalog: Optional[Path] = CatalogOpt):
    """Validate a catalog: print every problem with file, line, key path and reason."""
    s = _settings(catalog, None, None)
    cat = _load_catalog_or_exit(s.catalog_dir)
    out.print(f"[green]catalog OK[/]: {s.catalog_dir} — {len(cat.departments)} departments, "
              f"{len(cat.sources)} sources, {len(cat.kpis)} KPIs, {len(cat.milestones)} milestones")


@app.command()
def demo(data_dir: Optional[Path] = DataOpt, catalog: Optional[Path] = CatalogOpt):
    """Write the deterministic demo sources (CSV, Excel, SQLite) for the demo catalog."""
    from pipelines.demo import write_demo

    s = _settings(catalog, data_dir, None)
    _load_catalog_or_exit(s.catalog_dir)
    paths = write_demo(s.data_dir, s.catalog_dir)
    out.print(f"demo data written to {s.data_dir}:")
    for p in paths:
        out.print(f"  {p.relative_to(s.data_dir)}", markup=False)


DBT_STEP = "kpiwatch_dbt_models"


class _Progress(logging.Handler):
    """Prints one line per step start/end from Dagster's structured log records."""

    def __init__(self, console: Console, quiet: bool, dbt_models: int = 0):
        super().__init__(logging.DEBUG)
        self.console, self.quiet, self.started = console, quiet, {}
        self.dbt_models, self.bar, self.task = dbt_models, None, None

    def _start_bar(self, step: str) -> None:
        """A progress bar over the dbt models while `dbt build` runs (terminals only)."""
        if self.quiet or not self.dbt_models or not self.console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("    dbt build"), BarColumn(), MofNCompleteColumn(), TextColumn("models"),
                            TimeElapsedColumn(), TextColumn("[dim]{task.description}"), console=self.console,
                            transient=True)
        self.task = self.bar.add_task("", total=self.dbt_models)
        self.bar.start()

    def _stop_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if meta else None
        if event is None:
            if record.levelno >= logging.ERROR and meta:
                self.console.print(f"  [red]{meta.get('step_key') or ''}: {escape(meta.get('orig_message', record.getMessage()))}[/]")
            elif record.levelno == logging.WARNING and meta and (meta.get("step_key") or "").startswith("ingest__"):
                # An ingest step's named no-op (e.g. a second copy of a file in one drop).
                self.console.print(f"  [yellow]{meta.get('step_key')}: {escape(meta.get('orig_message', record.getMessage()))}[/]")
            return
        kind, step = event.event_type_value, event.step_key
        if kind == "STEP_START":
            self.started[step] = time.monotonic()
            if not self.quiet:
                self.console.print(f"  → {step}", markup=False)
            if step == DBT_STEP:
                self._start_bar(step)
        elif kind == "ASSET_MATERIALIZATION" and step == DBT_STEP and self.bar is not None:
            self.bar.update(self.task, advance=1, description=event.asset_key.to_user_string())
        elif kind == "STEP_SUCCESS" and not self.quiet:
            self._stop_bar()
            took = time.monotonic() - self.started.get(step, time.monotonic())
            self.console.print(f"  [green]✓[/] {step} [dim]({took:.1f}s)[/]")
        elif kind == "STEP_FAILURE":
            self._stop_bar()
            info = event.event_specific_data.error
            msg = info.message.strip().splitlines()[-1] if info else "step failed"
            self.console.print(f"  [red]✗ {step} failed:[/] {msg}")
        elif kind == "ASSET_CHECK_EVALUATION" and not self.quiet:
            ev = event.event_specific_data
            if not ev.passed:
                self.console.print(f"    [yellow]check failed[/] {ev.asset_key.to_user_string()}:{ev.check_name} "
                                   f"[dim]({ev.severity.value})[/]")


def _init_dagster_home(home: Path) -> None:
    """A local Dagster instance for CLI runs (the UI shows them when pointed at the same home)."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text("telemetry:\n  enabled: false\n")


def _dbt_model_count() -> int:
    from pipelines.transform.project import MANIFEST

    try:
        nodes = json.loads(MANIFEST.read_text())["nodes"].values()
    except (OSError, ValueError, KeyError):
        return 0
    return sum(1 for n in nodes if n.get("resource_type") == "model")


def _progress_logger(console: Console, quiet: bool):
    import dagster as dg

    models = _dbt_model_count()

    @dg.logger(description="kpiwatch CLI progress")
    def progress(_init_context):
        logger = logging.Logger("kpiwatch.progress", level=logging.DEBUG)
        logger.addHandler(_Progress(console, quiet, models))
        return logger

    return progress


@app.command()
def run(
    catalog: Optional[Path] = CatalogOpt,
    data_dir: Optional[Path] = DataOpt,
    warehouse: Optional[Path] = WarehouseOpt,
    as_of: Optional[str] = AsOfOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the summary and errors"),
    target: Optional[str] = TargetOpt,
):
    """Run the whole graph in-process: catalog → ingest → checks → dbt → alerts, then a summary."""
    from dataclasses import replace

    from pipelines.clock import system_now

    s = _settings(catalog, data_dir, warehouse, as_of, target)
    s = replace(s, now=s.now or system_now())  # the run's one clock reading, passed to every stage
    _load_catalog_or_exit(s.catalog_dir)
    if not s.data_dir.is_dir():
        err.print(f"[red]error:[/] data directory {s.data_dir} not found "
                  f"(create it, or write the demo with `kpiwatch demo --data-dir {s.data_dir}`)")
        raise typer.Exit(EXIT_CONFIG)
    from pipelines.warehouse import WarehouseBusy, run_lock

    # One run at a time. On Postgres this is also the first connection: a database that cannot
    # be reached is a one-line error (exit 2, from main) before anything is prepared.
    held = contextlib.ExitStack()
    try:
        held.enter_context(run_lock(s.warehouse))
    except WarehouseBusy as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_BUSY)
    with held:
        t0 = time.monotonic()
        with out.status("preparing (dbt manifest, Dagster definitions)…"):
            from pipelines.transform.project import prepare_manifest

            prepare_manifest()
            os.environ.update(s.export())
            os.environ.setdefault("DAGSTER_HOME", str(s.warehouse.parent / "dagster_home"))
            _init_dagster_home(Path(os.environ["DAGSTER_HOME"]))
            import dagster as dg

            from pipelines.definitions import ALL_ASSETS_JOB, build_definitions

            # Step progress goes to the terminal; dbt's own console output goes to the run log.
            progress_console = Console(file=sys.stdout, highlight=False, soft_wrap=True)  # one line per message
            defs = build_definitions(s, loggers={"console": _progress_logger(progress_console, quiet)})
            job = defs.resolve_job_def(ALL_ASSETS_JOB)
        if not quiet:
            from pipelines.warehouse import pg_describe

            where = pg_describe() + f" (local files beside {s.warehouse})" if s.target == "postgres" else s.warehouse
            out.print(f"kpiwatch run: catalog {s.catalog_dir}, data {s.data_dir}, warehouse {where}", soft_wrap=True)
        run_log = s.warehouse.parent / "logs" / "last_run.log"
        run_log.parent.mkdir(parents=True, exist_ok=True)
        from pipelines.shutdown import stoppable

        result = None
        # A SIGTERM or Ctrl-C stops the run and leaves no child process (dbt) behind.
        with stoppable() as stopped, dg.DagsterInstance.get() as instance, run_log.open("w") as log_fh, \
                contextlib.redirect_stdout(log_fh):
            # Dagster only uses a job's own loggers when the run config names them.
            result = job.execute_in_process(instance=instance, raise_on_error=False,
                                            run_config={"loggers": {"console": {}}})
    elapsed = time.monotonic() - t0
    if stopped or result is None or _interrupted(result):
        # Dagster takes SIGTERM as SIGINT while the graph runs, so which one came is not always known.
        how = signal.Signals(stopped[0]).name if stopped else "a signal (SIGTERM or Ctrl-C)"
        err.print(f"[red]run stopped[/] by {how} after {elapsed:.0f}s; no child process left running "
                  "(what was landed stays; the next run goes on from there)")
        raise typer.Exit(EXIT_STOPPED)
    try:
        _print_summary(s, result.run_id)
    except WarehouseBusy as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_BUSY)
    except Exception as exc:  # e.g. the run failed before the marts existed
        err.print(f"[red]no summary:[/] {type(exc).__name__}: {str(exc).splitlines()[0]}")
        if result.success:
            raise typer.Exit(EXIT_RUN_FAILED)
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        err.print(f"[red]run {result.run_id} failed[/] in {', '.join(failed) or 'setup'} after {elapsed:.0f}s; "
                  f"dbt output: {run_log}")
        busy = any("warehouse busy" in str(e.event_specific_data) for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        raise typer.Exit(EXIT_BUSY if busy else EXIT_RUN_FAILED)
    out.print(f"[green]run {result.run_id} succeeded[/] in {elapsed:.0f}s")
    unread = cli_ingest.unread_sources(s.warehouse, result.run_id)  # read none of their new files: exit 4
    reports = s.reports_dir
    if (reports / "scorecard.html").exists():
        out.print(f"Scorecard (open in a browser): {reports / 'scorecard.html'}", soft_wrap=True)
    if (reports / "audit-report.html").exists():
        out.print(f"Audit report: {reports / 'audit-report.html'}  (GX Data Docs: {reports / 'data_docs' / 'index.html'})", soft_wrap=True)
    for line in unread:
        err.print(f"[red]error:[/] {escape(line)}", soft_wrap=True)
    undelivered = _undelivered_alerts(s, result.run_id)
    if undelivered:
        err.print(f"[yellow]alerts held:[/] {escape(one_line(undelivered, None))}")
    if unread:  # a source that read nothing outranks held alerts: its data is missing
        raise typer.Exit(cli_ingest.EXIT_NOTHING_READ)
    if undelivered:
        raise typer.Exit(EXIT_ALERTS_HELD)


def _interrupted(result) -> bool:
    """Did a step of the run end because the run was interrupted (SIGTERM, SIGINT)?"""
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            error = getattr(e.event_specific_data, "error", None)
            if error is not None and error.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt"):
                return True
    return False


def _undelivered_alerts(s: Settings, run_id: str) -> str | None:
    """After a successful run: a line saying which alert messages did not reach their channel
    (left pending or sending in the outbox for the next run, or given up by this run), else None."""
    from pipelines.warehouse import connect

    try:
        with connect(s.warehouse, read_only=True) as con:
            rows = con.execute(
                """select status, count(*), max(last_error) from alerting.outbox
                   where status in ('pending', 'sending') or (status = 'failed' and run_id = ?)
                   group by status order by status""", [run_id]).fetchall()
    except Exception:  # no outbox (alerting did not run): nothing was held
        return None
    if not rows:
        return None
    counts = ", ".join(f"{n} {status}" for status, n, _ in rows)
    why = next((e for _, _, e in rows if e), None)
    total = sum(n for _, n, _ in rows)
    return (f"{total} alert message(s) not delivered ({counts})" + (f" — {why}" if why else "")
            + "; the outbox keeps them for the next run")


def _fmt(v, unit: str | None = None) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        text = f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    else:
        text = str(v)
    return f"{text}%" if unit == "percent" else text


def _standard_cell(k: dict, standard: str) -> str:
    """"95.00% not met (7/12)": the standard, the verdict, periods met of the last 12."""
    if k.get("band_lower") is not None:
        from kpimodel import display

        _, (lower, upper) = display.figures(k["actual"], [k["band_lower"], k["band_upper"]], k["unit"])
        text = f"{lower} to {upper} {'within' if k.get('standard_met') else 'outside'}"
    elif k.get("standard_value") is None:
        return "–"
    else:
        text = f"{standard} {'met' if k.get('standard_met') else 'not met'}"
    if k.get("periods_judged_last_12"):
        text += f" ({k['periods_met_last_12']}/{k['periods_judged_last_12']})"
    return text


def _kpi_table(kpis: list[dict], title: str) -> Table:
    from kpimodel import display, periods

    t = Table(title=title, title_justify="left")
    for col in ("department", "KPI", "period", "actual", "expected", "standard (met of last 12)", "target", "status",
                "forecast", "data trust"):
        t.add_column(col, overflow="fold")
    for k in kpis:
        st, trust = k["status"], k["data_trust"]
        decimals = k.get("decimals")
        # actual, expected value and standard with enough decimals to tell met from not met
        # (at least the KPI's own decimals: 3.15 stays 3.15)
        actual, (expected, standard) = display.figures(
            k["actual"], [k["expected_value"], k.get("standard_value")], k["unit"], decimals)
        if k.get("no_figure"):
            words = k["no_figure"]["text"]
        else:
            words = display.status_words(k, k.get("tolerance"), k.get("tolerance_kind"), k["unit"])
        forecast = k["forecast_status"]
        if forecast == "unknown" and k.get("forecast_reason"):
            forecast = k["forecast_reason"]
        elif forecast == "unknown" and k.get("actual") is not None and k.get("expected_value") is None \
                and k.get("standard_value") is None:
            forecast = "no target to forecast"
        t.add_row(
            k["department_id"], escape(display.kpi_title(k["kpi_id"], k.get("code"))),
            periods.label(k["period"], k.get("frequency"), k.get("fiscal_start_month")) if k["period"] else "–", actual,
            expected if k["expected_value"] is not None else "–", _standard_cell(k, standard),
            _target_cell(k, decimals),
            f"[{STATUS_STYLE.get(st, '')}]{escape(words)}[/]", escape(forecast),
            f"[{TRUST_STYLE.get(trust, '')}]{trust}[/]",
        )
    return t


def _target_cell(k: dict, decimals: int | None) -> str:
    """The target with the decimals it was given (3.15), "for 2015/16 Q2" when it is the period's
    own target (delivered with the data), else "by" its due date."""
    from kpimodel import display, periods

    value = k["target_value"]
    if value is None or k.get("no_figure"):
        return "–"  # (no figure for the period due: an older period's target would mislead)
    places = max(display.at_least(value, decimals) or display.base_decimals(value), display.written_decimals(value))
    text = display.number(value, k["unit"], places)
    due, start, freq = k.get("target_date"), k.get("period"), k.get("frequency")
    if due is not None and start is not None and freq and periods.end_of(start, freq) == due:
        return f"{text} for {periods.label(start, freq, k.get('fiscal_start_month'))}"
    return f"{text} by {due}"


def _milestone_line(m: dict) -> str:
    """One milestone, its state in words and the value its test judged, e.g. "missed ae_76
    (76% in March 2024) due 2024-03-31, in_period — 74.3% in 2024-03 against 76.0%"."""
    from kpimodel import display

    colour = {"missed": "red", "at_risk": "yellow", "met": "green"}.get(m["state"], "")
    head = f"[{colour}]{m['state']}[/]" if colour else m["state"]
    line = f"{head} {m['milestone_id']} ({escape(m['title'])}) due {m['due_date']}, {m.get('test') or 'by_date'}"
    if m["state"] == "met" and m.get("met_how") == "manual":
        return line + f" — met manually on {m['completed_on']}" + (f", by {escape(m['completed_by'])}" if m.get("completed_by") else "")
    if m["state"] == "no_data":
        return line + " — no data for the period that decides it"
    in_period = m.get("test") == "in_period"
    value = m.get("judged_actual") if in_period else m.get("latest_actual")
    shown, (threshold, forecast) = display.figures(value, [m["threshold"], m["forecast_value"]], m.get("unit"))
    label = "in the due date's period" if in_period else "latest"
    line += f" — {label} {shown} against {threshold}"
    return line + (f", forecast at the due date {forecast}" if m["forecast_value"] is not None else "")


def _restatement_line(r: dict) -> str:
    if r["previous_value"] is not None or r["revised_value"] is not None:
        change = f"{_fmt(r['previous_value'])} → {_fmt(r['revised_value'])} ({r['value_change']:+,.2f})" \
            if r["value_change"] is not None else f"{_fmt(r['previous_value'])} → {_fmt(r['revised_value'])}"
    else:
        change = (f"{_fmt(r['previous_numerator'])}/{_fmt(r['previous_denominator'])} → "
                  f"{_fmt(r['revised_numerator'])}/{_fmt(r['revised_denominator'])}")
    org = "" if r["org_id"] == "ALL" else f" {r['org_id']}"
    return f"{r['kpi_id']}{org} {str(r['period'])[:7]}: {change} in {r['revising_source_file'] or r['revising_batch_id']}"


def _print_trust_reasons(kpis: list[dict]) -> None:
    """Why each figure is not trusted (the reason is kept beside the flag, never hidden)."""
    for k in kpis:
        if k["data_trust"] != "trusted":
            trust = k["data_trust"]
            out.print(f"  [{TRUST_STYLE.get(trust, '')}]{trust}[/] {k['kpi_id']}: {escape(one_line(k.get('data_trust_reason') or '', None))}",
                      soft_wrap=True)


def _print_summary(s: Settings, run_id: str) -> None:
    from kpimodel import periods
    from pipelines.reporting.restatements import restatements
    from pipelines.reporting.summary import run_summary
    from pipelines.warehouse import connect

    with connect(s.warehouse, read_only=True) as con:
        sm = run_summary(con, run_id)
    out.print()
    out.print(f"[bold]kpiwatch summary[/] — as of {sm['as_of']}, run {run_id}")
    t = Table(title="KPIs by status per department", title_justify="left")
    published = {p["department_id"]: p["published"] for p in sm["publication"]}
    for col in ("department", "KPIs", "green", "amber", "red", "grey", "untrusted", "milestones met/missed/no data/at risk/upcoming",
                "source", "publication"):
        t.add_column(col)
    for d in sm["departments"]:
        pub = published.get(d["department_id"])
        t.add_row(d["department_id"], str(d["kpis"]), f"[green]{d['green']}[/]", f"[yellow]{d['amber']}[/]",
                  f"[red]{d['red']}[/]", str(d["grey"]), str(d["untrusted"]),
                  f"{d['milestones_met']}/{d['milestones_missed']}/{d.get('milestones_no_data', 0)}/"
                  f"{d['milestones_at_risk']}/{d['milestones_upcoming']}",
                  "[red]overdue[/]" if d["source_overdue"] else "[green]up to date[/]",
                  "–" if pub is None else "[green]published[/]" if pub else "[red]blocked[/]")
    out.print(t)
    attention = [k for k in sm["kpis"] if k["status"] != "green" or k["data_trust"] != "trusted"]
    out.print(_kpi_table(attention, "KPIs needing attention (not green, or data not trusted)"))
    _print_trust_reasons(attention)
    for p in sm["publication"]:
        if not p["published"]:
            out.print(f"  [red]publication blocked[/] {p['department_id']}: {escape(one_line(p['reason'], None))} "
                      "(previously published figures stay, marked stale)", soft_wrap=True)
    ms = [m for m in sm["milestones"] if m["state"] in ("missed", "no_data", "at_risk")]
    out.print("[bold]Milestones[/]: " + ", ".join(f"{st} {sum(m['state'] == st for m in sm['milestones'])}"
                                                 for st in ("met", "missed", "no_data", "at_risk", "upcoming")))
    for m in ms:
        out.print(f"  {_milestone_line(m)}")
    for src in sm["sources"]:
        if src["is_overdue"]:
            if src["latest_period"] is None:
                out.print(f"  [yellow]overdue source[/] {src['source_id']} ({src['department_id'] or 'shared'}): nothing landed yet"
                          + (f", {periods.label(src['expected_period'], src['cadence'], src.get('fiscal_start_month'))} expected"
                             if src["expected_period"] else ""))
            else:
                out.print(f"  [yellow]overdue source[/] {src['source_id']} ({src['department_id'] or 'shared'}): latest period "
                          f"{periods.label(src['latest_period'], src['cadence'], src.get('fiscal_start_month'))}, expected "
                          f"{periods.label(src['expected_period'], src['cadence'], src.get('fiscal_start_month'))} ({src['periods_overdue']} missing)")
    for a in sm["anomalies"]:
        out.print(f"  [magenta]sudden jump[/] {a['kpi_id']} in {str(a['period'])[:7]}: {_fmt(a['actual'])} "
                  f"(change {_fmt(a['change'])}, robust z {a['robust_z']:.1f})")
    landed = sum(b["rows_accepted"] for b in sm["batches"])
    quarantined = sum(b["rows_quarantined"] for b in sm["batches"])
    rows_in = sum(b["rows_in"] for b in sm["batches"])
    out.print(f"[bold]Rows[/] this run: {rows_in} in, {landed} landed, {quarantined} quarantined "
              f"from {len(sm['batches'])} new batch(es)")
    for x in sm.get("excluded", []):
        out.print(f"  excluded {x['rows']} × rule {x['rule']} ({x['source_id']}: {x['batches']} file(s))", markup=False)
    refusals: dict[tuple, list[dict]] = {}  # one line per cause: a series of files refused alike is counted
    for q in sm["quarantine"]:
        problem = q["problem"].removeprefix(str(q["source_file"]) + ": ") if q["problem"] else None
        refusals.setdefault((q["source_id"], q["reason"], problem) + (() if problem else (q["source_file"],)), []).append(q)
    for (source_id, reason, problem, *_), qs in refusals.items():
        where = qs[0]["source_file"] if len(qs) == 1 else f"{len(qs)} files, first {qs[0]['source_file']}"
        out.print(one_line(f"  quarantined {sum(q['rows'] for q in qs)} × {reason} ({source_id}: {where})"
                           + (f" — {problem}" if problem else ""), None), markup=False, soft_wrap=True)
    with connect(s.warehouse, read_only=True) as con:
        restated = restatements(con, run_id)
    if restated:
        out.print(f"[bold]Restated[/] by this run's batches: {len(restated)} published figure(s)")
        for r in restated[:10]:
            out.print("  " + one_line(_restatement_line(r), None), markup=False, soft_wrap=True)
    passed = sum(c["batches"] for c in sm["checks"] if c["success"])
    failed = [c for c in sm["checks"] if not c["success"]]
    out.print(f"[bold]Checks[/] this run: {passed} passed, {sum(c['batches'] for c in failed)} failed"
              + (": " + ", ".join(f"{c['check_name']} ({c['severity']})" for c in failed) if failed else ""))
    for c in sm["other_checks"]:
        out.print(f"  {c['kind']}: {c['passed']} passed, {c['failed']} failed"
                  + (f": {c['failed_names']}" if c["failed"] else ""))
    drift = [f for f in sm["drift"] if f["severity"] != "info"]
    out.print(f"[bold]Drift[/] this run: {len(drift)} finding(s)"
              + (f" ({sum(f['severity'] == 'critical' for f in drift)} critical)" if drift else "")
              + f", {len(sm['drift']) - len(drift)} info")
    for f in drift:
        colour = "red" if f["severity"] == "critical" else "yellow"
        out.print(f"  [{colour}]{f['severity']}[/] {f['kind']}: {escape(one_line(f['detail'], None))}", soft_wrap=True)
    sent = len({a["fingerprint"] for a in sm["alerts"] if a["outcome"] == "sent"})
    failed = len({a["fingerprint"] for a in sm["alerts"] if a["outcome"] == "failed"})
    out.print(f"[bold]Alerts[/] this run: {sent} sent, {failed} failed, {len(sm['firing'])} firing in total")
    for a in sm["alerts"]:
        line = f"  {a['outcome']} [{a['severity']}] {a['summary']} ({a['event']}) → {a['channel']} via {a['sinks']}"
        out.print(one_line(line + (f" — {a['detail']}" if a["detail"] else ""), None), markup=False, soft_wrap=True)
    out.print(f"Alert log: {s.alerts_path}", soft_wrap=True)


@app.command()
def status(
    catalog: Optional[Path] = CatalogOpt,
    warehouse: Optional[Path] = WarehouseOpt,
    fmt: str = typer.Option("table", "--format", help="table or json"),
    periods: int = typer.Option(1, "--periods", min=1, max=120,
                                help="with --format json: each KPI's last N periods as 'history'; "
                                     "with --by-org: the last N periods"),
    by_org: bool = typer.Option(False, "--by-org", help="organisations against each KPI's standard: "
                                                        "how many met it, and which did not (worst first)"),
    period: Optional[str] = typer.Option(None, "--period", help="every KPI's figure for this period instead of "
                                         "the latest (2014/15 Q2, 2014-Q3, 2026-03, 2026-W14, 2019/20, ...)"),
):
    """Show the current status of every KPI (latest period) from the warehouse."""
    from pipelines.reporting.restatements import restatements
    from pipelines.reporting.summary import kpi_history, kpi_status, organisations_against_standard
    from pipelines.warehouse import WarehouseBusy, connect

    if fmt not in ("table", "json"):
        err.print(f"[red]error:[/] --format must be 'table' or 'json', not {fmt!r}")
        raise typer.Exit(EXIT_CONFIG)
    s = _settings(catalog, None, warehouse)
    try:
        with connect(s.warehouse, read_only=True) as con:
            as_of = con.execute("select as_of from catalog.settings").fetchone()[0]
            if by_org:
                orgs = organisations_against_standard(con, periods)
            elif period is not None:
                from pipelines.reporting.summary import kpi_status_at

                try:
                    rows = kpi_status_at(con, period)
                except ValueError as exc:
                    err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
                    raise typer.Exit(EXIT_CONFIG)
                restated, history = [], {}
            else:
                rows = kpi_status(con)
                restated = restatements(con)
                history = kpi_history(con, periods) if periods > 1 else {}
    except WarehouseBusy as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_BUSY)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG)
    if by_org:
        _print_by_org(orgs, as_of, fmt)
        return
    if fmt == "json":
        if periods > 1:
            for row in rows:
                row["history"] = history.get(row["kpi_id"], [])
        sys.stdout.write(json.dumps({"as_of": as_of, "kpis": rows, "restatements": restated}, default=str, indent=2) + "\n")
        return
    title = f"KPI status and data trust as of {as_of} (as published)" if period is None else \
        f"KPI status and data trust for the period {period.strip()} as of {as_of}"
    out.print(_kpi_table(rows, title))
    _print_trust_reasons(rows)
    if restated:
        out.print(f"Restated figures ({len(restated)}; newest first):")
        for r in restated[:15]:
            out.print("  " + _restatement_line(r), markup=False)


def _print_by_org(orgs: list[dict], as_of, fmt: str, listed: int = 10) -> None:
    """`kpiwatch status --by-org`: "12 of 137 organisations met the 95.0% standard in 2019-03"
    and the organisations that did not, worst first (all of them in JSON)."""
    from kpimodel import display, periods

    if fmt == "json":
        sys.stdout.write(json.dumps({"as_of": as_of, "standards": orgs}, default=str, indent=2) + "\n")
        return
    if not orgs:
        out.print("No KPI with a standard has organisation figures (per-organisation data and a 'standard' "
                  "in the catalog are both needed).")
        return
    for o in orgs:
        unit = o["unit"]
        standard = display.number(o["standard_value"], unit, display.decimals_against(o["standard_value"], []))
        out.print(f"[bold]{escape(o['kpi_id'])}[/] {periods.label(o['period'], o['frequency'])}: {o['orgs_met']} of {o['orgs_judged']} "
                  f"organisations met the {standard} standard; {o['orgs_not_met']} did not", soft_wrap=True)
        if o["not_met"]:
            shown = ", ".join(f"{escape(m['org_id'])} {display.figure(m['actual'], unit, [o['standard_value']])}"
                              for m in o["not_met"][:listed])
            more = f" and {len(o['not_met']) - listed} more" if len(o["not_met"]) > listed else ""
            out.print(f"  not met (worst first): {shown}{more}", soft_wrap=True)


# Commands owned by other stages (quality and audit; alert silences, acks and digests).
from pipelines import cli_alerts, cli_ledger, cli_quality  # noqa: E402
from pipelines import cli_bench  # noqa: E402
from pipelines import cli_ingest  # noqa: E402

cli_quality.register(app)
cli_alerts.register(app)
cli_bench.register(app)
cli_ledger.register(app)
cli_ingest.register(app)


def main() -> None:
    from pipelines.warehouse import WarehouseConfigError

    try:
        app()
    except WarehouseConfigError as exc:  # e.g. the Postgres warehouse cannot be reached
        err.print(f"[red]error:[/] {exc}")
        sys.exit(EXIT_CONFIG)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
