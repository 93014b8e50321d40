"""Validate a parsed batch with Great Expectations' pandas engine.

GX 1.x cannot validate DuckDB through SQLAlchemy (every expectation fails with IndexError, GX
issues #10738, #11579), so each batch is validated as a DataFrame. Suites are committed JSON
under expectations/suites/ (one per source, falling back to `landed_observations`, and one per
published mart; see pipelines/quality/contracts.py); their expectations carry kpiwatch metadata:
`check_name` (the Dagster asset check), `severity` (critical | warn) and, for row-level
expectations, the quarantine `reason` of the rows they reject.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.quality.contracts import DEFAULT_SUITE, load_suite

SUITE = DEFAULT_SUITE
# Row lists kept in a stored GX result (the quarantine table holds every rejected row).
STORED_ROWS = 20


@dataclass
class ExpectationOutcome:
    check_name: str
    expectation_type: str
    column: str | None
    severity: str
    success: bool
    observed: str
    expected: str
    unexpected_count: int
    reason: str | None = None
    unexpected_rows: list[int] = field(default_factory=list)  # row numbers (the frame's index)
    suite: str = "kpiwatch"  # the GX suite, or "kpiwatch" for kpiwatch's own checks


def load_suite_dict(name: str = SUITE) -> dict:
    return load_suite(name)


def suite_check_names(name: str = SUITE) -> list[tuple[str, str]]:
    """(check_name, severity) pairs declared by a suite, in order, without duplicates."""
    out: dict[str, str] = {}
    for exp in load_suite_dict(name)["expectations"]:
        out.setdefault(exp["meta"]["check_name"], exp["meta"]["severity"])
    return list(out.items())


@functools.cache
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    asset = ctx.data_sources.add_pandas("kpiwatch").add_dataframe_asset("batch")
    return gx, asset.add_batch_definition_whole_dataframe("whole")


def _expected_text(kwargs: dict, params: dict) -> str:
    shown = {}
    for k, v in kwargs.items():
        if k in ("column", "result_format", "batch_id"):
            continue
        if isinstance(v, dict) and "$PARAMETER" in v:
            v = params.get(v["$PARAMETER"])
        if isinstance(v, (list, set, tuple)) and len(v) > 12:
            v = f"{len(v)} allowed values"
        shown[k] = v
    return json.dumps(shown, default=str, sort_keys=True)


def _trimmed(result) -> dict:
    """The GX result as JSON, row lists cut to STORED_ROWS (kept for Data Docs and the audit)."""
    doc = result.to_json_dict()
    for r in doc.get("results", []):
        res = r.get("result") or {}
        for key in ("unexpected_index_list", "unexpected_list", "partial_unexpected_list",
                    "partial_unexpected_index_list", "partial_unexpected_counts", "unexpected_index_query"):
            if isinstance(res.get(key), list):
                res[key] = res[key][:STORED_ROWS]
    return doc


def validate_frame(df, parameters: dict, name: str = SUITE, results: list | None = None) -> list[ExpectationOutcome]:
    """Run the suite on a DataFrame whose index holds the source row numbers. When `results`
    is a list, the GX validation result (JSON, row lists trimmed) is appended to it."""
    gx, batch_definition = _context()
    suite_dict = load_suite_dict(name)
    suite = gx.ExpectationSuite(name=suite_dict["name"], expectations=suite_dict["expectations"])
    labels = list(df.index)  # GX reports positions; map them back to source row numbers
    frame = df.reset_index(drop=True)
    specs = {e["meta"]["check_name"]: e for e in suite_dict["expectations"]}
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite, expectation_parameters=parameters, result_format={"result_format": "COMPLETE"}
    )
    if results is not None:
        results.append(_trimmed(result))
    outcomes = []
    order = list(specs)
    for r in result.results:  # GX does not keep the suite's order: match by check_name
        cfg = r.expectation_config
        res = r.result or {}
        spec = specs[cfg.meta["check_name"]]
        meta = spec["meta"]
        raised = (r.exception_info or {}).get("raised_exception")
        idx = res.get("unexpected_index_list") or []
        rows = sorted({int(labels[i]) for i in idx}) if isinstance(idx, list) else []
        observed = res.get("observed_value")
        if observed is None:
            observed = f"{res.get('unexpected_count', 0)} of {res.get('element_count', len(frame))} rows unexpected"
        if raised:
            observed = f"expectation error: {(r.exception_info or {}).get('exception_message')}"
        outcomes.append(ExpectationOutcome(
            check_name=meta["check_name"],
            expectation_type=cfg.type,
            column=cfg.kwargs.get("column") or (",".join(cfg.kwargs.get("column_list", [])) or None)
            or (",".join(c for c in (cfg.kwargs.get("column_A"), cfg.kwargs.get("column_B")) if c) or None),
            severity=meta["severity"],
            success=bool(r.success) and not raised,
            observed=json.dumps(observed, default=str) if not isinstance(observed, str) else observed,
            expected=_expected_text(spec["kwargs"], parameters),
            unexpected_count=int(res.get("unexpected_count") or 0),
            reason=meta.get("reason"),
            unexpected_rows=rows,
            suite=name,
        ))
    missing = [n for n in order if n not in {o.check_name for o in outcomes}]
    if missing:
        # GX drops an expectation it cannot build (e.g. a misspelt type) with a log line only:
        # a contract that silently checks less than it says is worse than a failed run.
        raise ValueError(f"suite {name}: GX did not run {', '.join(missing)} (check the expectation types)")
    outcomes.sort(key=lambda o: order.index(o.check_name))
    return outcomes
