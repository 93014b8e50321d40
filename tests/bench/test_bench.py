"""The scale benchmark's parts: a deterministic generator, and a yardstick (baseline.sql) that
computes the same marts as kpiwatch. Timings are the benchmark's business (`kpiwatch bench
run`), never asserted here."""
import hashlib
import json

import pytest

from pipelines.bench.baseline import SCRIPT, sections
from pipelines.bench.generate import BAD_KINDS, generate, increment
from pipelines.catalog.loader import load_catalog


def _tree_hash(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = generate(tmp_path / "a", 6000, seed=11, departments=2, n_months=6)
    b = generate(tmp_path / "b", 6000, seed=11, departments=2, n_months=6)
    c = generate(tmp_path / "c", 6000, seed=12, departments=2, n_months=6)
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]]
    assert [f["sha256"] for f in a["files"]] != [f["sha256"] for f in c["files"]]
    # Increments are reproducible too.
    assert increment(tmp_path / "a", 0.01, day=1) == increment(tmp_path / "b", 0.01, day=1)


def test_estate_is_a_valid_catalog_with_csv_parquet_and_the_planted_problems(tmp_path):
    m = generate(tmp_path, 20000, seed=7, departments=4, n_months=12)
    cat = load_catalog(tmp_path / "catalog")
    assert {s["kind"] for s in cat.sources.values()} == {"csv", "parquet"}
    assert len(cat.kpis) == 20 and len(cat.milestones) == 4
    assert abs(m["observations"] - 20000) / 20000 < 0.1
    assert sum(f["rows"] for f in m["files"]) == m["observations"]
    # Every kind of bad row is planted, at the fixed rate (at least one per file).
    planted = m["planted_rows"]
    assert {"negative", "unknown_kpi", "duplicate"} <= set(planted) and planted.get("unparseable")
    assert sum(planted.values()) >= len(m["files"])
    assert set(m["stories"].values()) == {"red", "amber", "missed_milestone", "jump"}
    # The overdue department sends two months fewer; the first resubmits a month (a revision).
    names = [f["path"] for f in m["files"]]
    assert sum(m["overdue_department"] in n for n in names) == 10
    assert any(n.endswith("_v2.csv") for n in names)
    assert len(BAD_KINDS) == 4


def test_baseline_script_sections_map_to_kpiwatch_stages():
    stages = [s for s, _ in sections(SCRIPT.read_text())]
    assert {"ingest", "validation", "dbt", "drift"} == set(stages)


@pytest.mark.slow
def test_kpiwatch_marts_equal_the_baseline_row_for_row_full_and_incremental(tmp_path):
    # The yardstick must compute the same thing, or its timings compare nothing.
    from pipelines.bench.run import bench_size

    res = bench_size(4000, estates=tmp_path, fraction=0.01, log=lambda m: None, departments=4, months=6)
    assert res["kpiwatch_full"]["success"], res["kpiwatch_full"]
    for mode in ("full", "incremental"):
        eq = res[f"equal_{mode}"]
        assert eq and all(v["equal"] for v in eq.values()), json.dumps(eq, indent=1)
        assert eq["kpi_org_values"]["kpiwatch_rows"] > 0 and eq["quarantine_by_reason"]["kpiwatch_rows"] > 0
    assert res["increment_rows"] > 0
    # The incremental run landed only the new files.
    assert res["kpiwatch_incremental"]["gx_validations"] == 4
    assert res["baseline_incremental"]["batches"] == res["baseline_full"]["batches"] + 4
