"""Build GX Data Docs from the suites in expectations/ and the validation results kept in
quality.gx_validation_results, into a directory of the caller's choosing (beside the audit
report). Data Docs pages load their styles and scripts from CDNs (GX's templates); the audit
report itself stays self-contained and only links to them."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def build_data_docs(con, out_dir: Path, run_id: str, batch_ids: list[str] | None = None) -> Path:
    """Data Docs for the validations of `run_id` and of `batch_ids` (e.g. the batches behind the
    published figures, landed in earlier runs). Returns the index page."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)

    from pipelines.quality.contracts import all_suite_names, load_suite

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Generated output: ignored wherever the report is written.
    (out_dir / ".gitignore").write_text("*\n")
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    ctx.add_data_docs_site("kpiwatch_audit", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    for name in all_suite_names():
        suite = load_suite(name)
        ctx.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=suite["expectations"],
                                           meta={"description": suite["meta"].get("description", "")}))
    ids = sorted(set(batch_ids or []))
    in_batches = f" or batch_id in ({', '.join('?' * len(ids))})" if ids else ""
    rows = con.execute(f"""
        select run_id, batch_id, suite, result_json, validated_at from quality.gx_validation_results
        where run_id = ?{in_batches} order by validated_at""", [run_id, *ids]).fetchall()
    for r_run, batch_id, suite, result_json, validated_at in rows:
        doc = json.loads(result_json)
        result = ExpectationSuiteValidationResult(**doc)
        key = ValidationResultIdentifier(
            ExpectationSuiteIdentifier(suite),
            RunIdentifier(run_name=_SAFE.sub("_", str(r_run)),
                          run_time=validated_at.replace(tzinfo=dt.timezone.utc)),
            _SAFE.sub("_", batch_id))
        ctx.validation_results_store.set(key, result)
    ctx.build_data_docs(site_names=["kpiwatch_audit"])
    return out_dir / "index.html"
