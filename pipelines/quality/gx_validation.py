"""Validate a parsed batch with Great Expectations' pandas engine.

GX 1.x cannot validate DuckDB through SQLAlchemy (every expectation fails with IndexError, GX
issues #10738, #11579), so each batch is validated as a DataFrame; on the Postgres warehouse
target the published mart is validated in the database through SQLAlchemy (`validate_sql`). Suites are committed JSON
under expectations/suites/ (one per source, falling back to `landed_observations`, and one per
published mart; see pipelines/quality/contracts.py); their expectations carry kpiwatch metadata:
`check_name` (the Dagster asset check), `severity` (critical | warn) and, for row-level
expectations, the quarantine `reason` of the rows they reject.
"""
from __future__ import annotations

import functools
import json
import os
import re
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
    # a check judged for one department only (a shared source's rejection rate per department);
    # None: the batch's (every department the source feeds)
    department_id: str | None = None


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
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite, expectation_parameters=parameters, result_format={"result_format": "COMPLETE"}
    )
    return _outcomes(result, suite_dict, parameters, name, len(frame), lambda i: int(labels[i]), results)


def _sql_expectations(expectations: list[dict]) -> list[dict]:
    """A suite's expectations for a SQL batch: a pandas row condition `col == "value"` becomes
    GX's own condition syntax, which GX turns into a WHERE clause."""
    out = []
    for e in expectations:
        kw = dict(e["kwargs"])
        if kw.get("condition_parser") == "pandas":
            m = re.fullmatch(r'\s*(\w+)\s*==\s*"([^"]*)"\s*', kw.get("row_condition", ""))
            if not m:
                raise ValueError(f"suite expectation {e['meta'].get('check_name')}: row_condition "
                                 f"{kw.get('row_condition')!r} has no SQL form (only `column == \"value\"`)")
            kw.update(condition_parser="great_expectations", row_condition=f'col("{m[1]}")=="{m[2]}"')
        out.append({**e, "kwargs": kw})
    return out


def validate_sql(url: str, query: str, parameters: dict, name: str, key_column: str, results: list | None = None
                 ) -> tuple[list[ExpectationOutcome], list[str]]:
    """Run the suite in the database through SQLAlchemy (GX's SQL execution engine): `query` is the
    batch, `url` a SQLAlchemy URL of the Postgres warehouse. Failing rows are reported by `key_column`; returns the
    outcomes (unexpected_rows index into the returned keys) and the keys of failing rows."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    # `url` may name a password as ${KPIWATCH_PG_PASSWORD}: GX substitutes it from the
    # environment when it connects and keeps only the placeholder in its configuration.
    source = ctx.data_sources.add_postgres("kpiwatch_warehouse", connection_string=url)
    batch = source.add_query_asset("batch", query=query).add_batch_definition_whole_table("whole").get_batch()
    suite_dict = load_suite_dict(name)
    suite_dict = {**suite_dict, "expectations": _sql_expectations(suite_dict["expectations"])}
    suite = gx.ExpectationSuite(name=suite_dict["name"], expectations=suite_dict["expectations"])
    result = batch.validate(suite, expectation_parameters=parameters,
                            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [key_column]})
    keys: list[str] = []

    def label(entry) -> int:
        key = entry.get(key_column) if isinstance(entry, dict) else entry
        if key not in keys:
            keys.append(key)
        return keys.index(key)

    return _outcomes(result, suite_dict, parameters, name, None, label, results), keys


def _outcomes(result, suite_dict: dict, parameters: dict, name: str, element_count, label, results) -> list[ExpectationOutcome]:
    """kpiwatch's outcomes from a GX validation result, in the suite's order; `label` maps an
    entry of GX's unexpected_index_list to a row label."""
    if results is not None:
        results.append(_trimmed(result))
    specs = {e["meta"]["check_name"]: e for e in suite_dict["expectations"]}
    outcomes = []
    order = list(specs)
    for r in result.results:  # GX does not keep the suite's order: match by check_name
        cfg = r.expectation_config
        res = r.result or {}
        spec = specs[cfg.meta["check_name"]]
        meta = spec["meta"]
        raised = (r.exception_info or {}).get("raised_exception")
        idx = res.get("unexpected_index_list") or []
        rows = sorted({label(i) for i in idx}) if isinstance(idx, list) else []
        observed = res.get("observed_value")
        if observed is None:
            observed = f"{res.get('unexpected_count', 0)} of {res.get('element_count', element_count)} rows unexpected"
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
