"""The scale benchmark: kpiwatch against the hand-written DuckDB yardstick on one estate.

For each size: generate (or reuse) the estate; on a fresh warehouse time a full kpiwatch run
by stage and the baseline script by section, each in its own child process (wall seconds and
peak RSS, the child's and its children's, e.g. dbt's); check that both computed the same marts;
then add one day's new files (0.1% of the rows) and time the incremental run of each. Results
are appended to bench-results/bench.csv and written whole to bench-results/<time>-n<N>.json.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pipelines.config import PROJECT_ROOT

STAGE_ORDER = ["setup", "catalog", "ingest", "validation", "dbt", "drift", "alerts", "report", "orchestration", "other"]
DEFAULT_ESTATES = PROJECT_ROOT / "bench-data"
DEFAULT_RESULTS = PROJECT_ROOT / "bench-results"


def _tree(pid: int) -> list[int]:
    """The process and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class _PeakRss:
    """Samples the resident memory of a process tree (kpiwatch and, say, its dbt subprocess)
    every `every` seconds: the peak of their sum (memory needed at once), and the largest
    single process' high-water mark. Sampling, not rusage: a forked child's ru_maxrss would
    include the benchmark process' own memory, copied at fork."""

    def __init__(self, pid: int, every: float = 0.1):
        import threading

        self.pid, self.every, self.total_kib, self.single_kib = pid, every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            pids = _tree(self.pid)
            self.total_kib = max(self.total_kib, sum(_rss_kib(p) for p in pids))
            self.single_kib = max([self.single_kib] + [_rss_kib(p, "VmHWM") for p in pids])
            self._stop.wait(self.every)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.total_kib / 1024.0, self.single_kib / 1024.0


def child(args: list[str], log: Path, env: dict | None = None) -> tuple[int, float, float, float]:
    """Run `python -m ...args` with its output to `log`; (exit code, wall seconds, peak RSS in MB
    of it and its children together, peak RSS in MB of the largest single process)."""
    import time

    t = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", *args], env={**os.environ, **(env or {})},
                                stdout=fh, stderr=subprocess.STDOUT)
        sampler = _PeakRss(proc.pid)
        proc.wait()
        total, single = sampler.stop()
    return proc.returncode, time.perf_counter() - t, total, single


def prepare_estate(estate: Path, observations: int, seed: int, departments: int = 8, months: int = 36) -> dict:
    """Reuse an estate generated with the same arguments (dropping earlier increments), else write it."""
    from pipelines.bench.generate import generate

    manifest_path = estate / "manifest.json"
    if manifest_path.exists():
        m = json.loads(manifest_path.read_text())
        if (m.get("observations_requested"), m.get("seed"), m.get("departments"), m.get("months")) == (
                observations, seed, departments, months):
            for inc in m.pop("increments", []):
                for f in inc["files"]:
                    (estate / f["path"]).unlink(missing_ok=True)
            manifest_path.write_text(json.dumps(m, indent=1) + "\n")
            return m
    return generate(estate, observations, seed, departments, months)


def _kpiwatch(catalog: Path, work: Path, label: str, env: dict | None = None) -> dict:
    out = work / f"kpiwatch-{label}.json"
    rc, wall, rss, single = child(["pipelines.bench.stages", str(catalog), str(out)], out.with_suffix(".log"), env)
    res = json.loads(out.read_text()) if out.exists() else {"success": False, "stages": {}}
    res.update(exit_code=rc, process_wall_seconds=wall, peak_rss_mb=rss, peak_rss_single_process_mb=single)
    return res


def _baseline(estate: Path, db: Path, work: Path, label: str) -> dict:
    out = work / f"baseline-{label}.json"
    rc, wall, rss, single = child(["pipelines.bench.baseline", str(estate), str(db), str(out)], out.with_suffix(".log"))
    res = json.loads(out.read_text()) if out.exists() else {"success": False, "stages": {}}
    res.update(exit_code=rc, process_wall_seconds=wall, peak_rss_mb=rss, peak_rss_single_process_mb=single)
    return res


def bench_size(observations: int, seed: int = 7, estates: Path = DEFAULT_ESTATES, fraction: float = 0.001,
               log=print, departments: int = 8, months: int = 36) -> dict:
    from pipelines.bench.compare import compare
    from pipelines.bench.generate import increment

    estate = estates / f"n{observations}"
    log(f"estate {estate}: preparing {observations:,} observations")
    manifest = prepare_estate(estate, observations, seed, departments, months)
    shutil.rmtree(estate / "warehouse", ignore_errors=True)
    (estate / "warehouse").mkdir(parents=True)
    work = estate / "warehouse"
    kw_db, bl_db = work / "kpiwatch.duckdb", work / "baseline.duckdb"
    result = {"observations": manifest["observations"], "observations_requested": observations, "seed": seed,
              "files": len(manifest["files"]), "organisations": manifest["organisations"]}
    log("  kpiwatch full run…")
    result["kpiwatch_full"] = _kpiwatch(estate / "catalog", work, "full")
    log(f"    {result['kpiwatch_full']['process_wall_seconds']:.1f}s")
    log("  baseline full run…")
    result["baseline_full"] = _baseline(estate, bl_db, work, "full")
    log(f"    {result['baseline_full']['process_wall_seconds']:.1f}s")
    result["equal_full"] = compare(kw_db, bl_db) if result["kpiwatch_full"]["success"] else {}
    files = increment(estate, fraction)
    result["increment_rows"] = sum(f["rows"] for f in files)
    log(f"  incremental runs ({result['increment_rows']:,} new rows)…")
    result["kpiwatch_incremental"] = _kpiwatch(estate / "catalog", work, "incremental")
    result["baseline_incremental"] = _baseline(estate, bl_db, work, "incremental")
    result["equal_incremental"] = compare(kw_db, bl_db) if result["kpiwatch_incremental"]["success"] else {}
    return result


def bench_demo(log=print) -> dict:
    """The demo's `kpiwatch run` on a fresh warehouse: nearly all of it is fixed overhead."""
    from pipelines.config import DEFAULT_CATALOG
    from pipelines.demo import write_demo

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_demo(tmp / "data", DEFAULT_CATALOG)
        log("  demo run…")
        res = _kpiwatch(DEFAULT_CATALOG, tmp, "demo", env={"KPIWATCH_DATA_DIR": str(tmp / "data"),
                                                            "KPIWATCH_WAREHOUSE": str(tmp / "wh" / "kpiwatch.duckdb")})
    return res


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def rows_for_table(result: dict) -> list[dict]:
    """One row per (size, mode, stage): kpiwatch seconds, baseline seconds, ratio."""
    out = []
    for mode in ("full", "incremental"):
        kw, bl = result[f"kpiwatch_{mode}"], result[f"baseline_{mode}"]
        for stage in STAGE_ORDER:
            k, b = kw["stages"].get(stage), bl["stages"].get(stage)
            if k is None and b is None:
                continue
            out.append({"observations": result["observations"], "mode": mode, "stage": stage,
                        "kpiwatch_s": round(k, 2) if k is not None else None,
                        "baseline_s": round(b, 2) if b is not None else None, "ratio": _ratio(k, b)})
        out.append({"observations": result["observations"], "mode": mode, "stage": "total",
                    "kpiwatch_s": round(kw["process_wall_seconds"], 2), "baseline_s": round(bl["process_wall_seconds"], 2),
                    "ratio": _ratio(kw["process_wall_seconds"], bl["process_wall_seconds"]),
                    "kpiwatch_rss_mb": round(kw["peak_rss_mb"]), "baseline_rss_mb": round(bl["peak_rss_mb"])})
    return out


def write_results(results: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    sizes = "-".join(f"n{r['observations_requested']}" for r in results["sizes"])
    path = out_dir / f"{stamp}-{sizes or 'demo'}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    table = out_dir / "bench.csv"
    fields = ["time", "git_commit", "observations", "mode", "stage", "kpiwatch_s", "baseline_s", "ratio",
              "kpiwatch_rss_mb", "baseline_rss_mb"]
    new = not table.exists()
    with table.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        for r in results["sizes"]:
            for row in rows_for_table(r):
                w.writerow({"time": stamp, "git_commit": results.get("git_commit"), **row})
        if results.get("demo"):
            d = results["demo"]
            w.writerow({"time": stamp, "git_commit": results.get("git_commit"), "observations": "demo", "mode": "full",
                        "stage": "total", "kpiwatch_s": round(d["process_wall_seconds"], 2),
                        "kpiwatch_rss_mb": round(d["peak_rss_mb"])})
    return path


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_benchmark(sizes: list[int], seed: int = 7, estates: Path = DEFAULT_ESTATES, out_dir: Path = DEFAULT_RESULTS,
                  fraction: float = 0.001, demo: bool = True, log=print) -> tuple[dict, Path]:
    results = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
               "cpus": os.cpu_count(), "sizes": []}
    if demo:
        results["demo"] = bench_demo(log)
    for n in sizes:
        results["sizes"].append(bench_size(n, seed, estates, fraction, log))
        write_results({**results, "partial": True}, out_dir / "partial")
    return results, write_results(results, out_dir)
