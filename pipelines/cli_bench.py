"""`kpiwatch bench`: the scale benchmark's commands (docs/scale.md)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(no_args_is_help=True, help="Scale benchmark: synthetic estates, kpiwatch against a DuckDB SQL yardstick.")
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        mult = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        try:
            sizes.append(int(float(part[:-1] if mult > 1 else part) * mult))
        except ValueError:
            raise typer.BadParameter(f"{part!r} is not a number of observations (e.g. 1m, 250k, 20000)") from None
    return sizes


def _print(results: dict) -> None:
    from pipelines.bench.run import rows_for_table

    t = Table(title="kpiwatch vs the DuckDB SQL baseline (seconds)")
    for col in ("observations", "mode", "stage", "kpiwatch", "baseline", "ratio", "peak RSS MB kpiwatch / baseline"):
        t.add_column(col, justify="right" if col not in ("mode", "stage") else "left")
    for size in results["sizes"]:
        for r in rows_for_table(size):
            rss = f"{r['kpiwatch_rss_mb']} / {r['baseline_rss_mb']}" if "kpiwatch_rss_mb" in r else ""
            t.add_row(f"{r['observations']:,}", r["mode"], r["stage"],
                      "" if r["kpiwatch_s"] is None else f"{r['kpiwatch_s']:.1f}",
                      "" if r["baseline_s"] is None else f"{r['baseline_s']:.1f}",
                      "" if r["ratio"] is None else f"{r['ratio']:.1f}×", rss)
        full, inc = size["kpiwatch_full"]["process_wall_seconds"], size["kpiwatch_incremental"]["process_wall_seconds"]
        t.add_row(f"{size['observations']:,}", "incremental", "share of full", f"{inc / full:.0%}", "", "", "")
    out.print(t)
    if results.get("demo"):
        d = results["demo"]
        out.print(f"demo `kpiwatch run`: {d['process_wall_seconds']:.1f}s wall, set-up {d['stages'].get('setup', 0):.1f}s, "
                  f"peak RSS {d['peak_rss_mb']:.0f} MB")
    for size in results["sizes"]:
        for mode in ("full", "incremental"):
            eq = size.get(f"equal_{mode}") or {}
            bad = [k for k, v in eq.items() if not v["equal"]]
            state = "no comparison (kpiwatch run failed)" if not eq else ("same marts" if not bad else f"DIFFER: {', '.join(bad)}")
            out.print(f"{size['observations']:,} {mode}: kpiwatch vs baseline: {state}")


def register(app: typer.Typer) -> None:
    """Add `kpiwatch bench generate|run` to the kpiwatch CLI."""

    @bench_app.command()
    def generate(
        observations: str = typer.Option("1m", "--observations", "-n", help="About how many observations (e.g. 20000, 1m, 10m)"),
        out_dir: Path = typer.Option(..., "--out", help="Estate directory (catalog/, data/, baseline/, manifest.json)"),
        seed: int = typer.Option(7, "--seed", help="Same seed, same files"),
        departments: int = typer.Option(8, "--departments", help="Departments (one source each, CSV or Parquet)"),
        months: int = typer.Option(36, "--months", help="Monthly periods per source"),
        increment_day: Optional[int] = typer.Option(None, "--increment", help="Instead: add day N's new files (0.1%% of the rows)"),
    ):
        """Write a reproducible synthetic estate: catalog, CSV and Parquet sources, planted problems."""
        from pipelines.bench.generate import generate as gen, increment

        if increment_day is not None:
            files = increment(out_dir, 0.001, increment_day)
            out.print(f"day {increment_day}: {sum(f['rows'] for f in files):,} new rows in {len(files)} files under {out_dir}/data")
            return
        m = gen(out_dir, _sizes(observations)[0], seed, departments, months)
        out.print(f"{m['observations']:,} observations in {len(m['files'])} files ({m['departments']} departments, "
                  f"{m['kpis']} KPIs, {m['organisations']} organisations, {m['months']} months) under {out_dir}")
        out.print(f"planted rows: {m['planted_rows']}; stories: {m['stories']}; overdue: {m['overdue_department']}")
        out.print(f"run it: kpiwatch run --catalog {out_dir}/catalog")

    @bench_app.command("run")
    def run_cmd(
        sizes: str = typer.Option("1m,10m", "--observations", "-n", help="Comma-separated sizes"),
        seed: int = typer.Option(7, "--seed"),
        estates: Optional[Path] = typer.Option(None, "--estates", help="Where estates are generated [default: bench-data/]"),
        results_dir: Optional[Path] = typer.Option(None, "--results", help="Results directory [default: bench-results/]"),
        demo: bool = typer.Option(True, "--demo/--no-demo", help="Also time the demo's `kpiwatch run` (fixed overhead)"),
    ):
        """Time kpiwatch (full and daily incremental, per stage, peak RSS) against the SQL baseline."""
        from pipelines.bench.run import DEFAULT_ESTATES, DEFAULT_RESULTS, run_benchmark

        results, path = run_benchmark(_sizes(sizes), seed, estates or DEFAULT_ESTATES, results_dir or DEFAULT_RESULTS,
                                      demo=demo, log=lambda m: out.print(m, markup=False))
        _print(results)
        out.print(f"results: {path} (and {path.parent / 'bench.csv'})")

    app.add_typer(bench_app, name="bench")
