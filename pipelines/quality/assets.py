"""Dagster assets of the quality stage after dbt: drift findings, then the publication of each
department's KPI figures (with the mart contract as asset checks)."""


import dagster as dg

from pipelines.config import DATA_TEAM_OWNER
from pipelines.resources import KpiwatchResource
from pipelines.warehouse import connect, rows

DRIFT_KEY = dg.AssetKey(["quality", "drift_findings"])
PUBLISH_KEY = dg.AssetKey(["publish", "kpi_status"])
MARTS = [dg.AssetKey("fct_kpi_progress"), dg.AssetKey("fct_source_freshness")]
LANDING = [dg.AssetKey(["raw", "observations"]), dg.AssetKey(["quality", "check_results"])]

# One asset check per drift kind: it fails when the kind has a warning or critical finding on
# the latest period of a KPI or source (older findings are history).
DRIFT_CHECKS = {
    "kpi_outlier": "kpi_values_within_history",
    "level_shift": "no_level_shift",
    "volume": "source_volume_typical",
    "missing_submission": "submissions_on_time",
}
SEVERITY = {"critical": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}
# Assets whose checks are stored by their own step (ingest) or by this module.
_STORED_ELSEWHERE = ("ingest", "raw", "quality", "publish", "catalog")


@dg.asset(
    key=DRIFT_KEY, group_name="marts", deps=[*MARTS, *LANDING], kinds={"python", "duckdb"}, owners=[DATA_TEAM_OWNER],
    check_specs=[dg.AssetCheckSpec(name, asset=DRIFT_KEY, description=f"warn: no {kind.replace('_', ' ')} "
                                   "finding on the latest period (docs/quality.md)")
                 for kind, name in DRIFT_CHECKS.items()],
)
def drift_findings(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource):
    """Drift and anomalies, stored with the run id in quality.drift_findings: KPI values against
    their own history (robust z, seasonality-aware), level shifts, source volume against its
    typical volume, and missing submissions against each source's cadence with a grace period.
    Each finding has a severity and its observed and expected values (docs/quality.md)."""
    from pipelines.quality.drift import detect, load_inputs, store_findings

    with connect(kpiwatch.warehouse) as con:
        inputs = load_inputs(con, kpiwatch.reporting_date(context))
        findings = detect(inputs)
        store_findings(con, context.run_id, inputs.as_of, kpiwatch.run_now(context), findings)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("info", "warning", "critical")}
    yield dg.MaterializeResult(asset_key=DRIFT_KEY, metadata={"findings": len(findings), **counts})
    for kind, name in DRIFT_CHECKS.items():
        hits = [f for f in findings if f.kind == kind and f.is_latest and f.severity in ("warning", "critical")]
        yield dg.AssetCheckResult(
            asset_key=DRIFT_KEY, check_name=name, passed=not hits,
            severity=dg.AssetCheckSeverity.ERROR if any(f.severity == "critical" for f in hits)
            else dg.AssetCheckSeverity.WARN,
            metadata={"findings": len(hits), "observed": "; ".join(f.detail for f in hits)[:2000] or "none",
                      "expected": "no warning or critical finding on the latest period"},
        )


def _mart_check_specs() -> list[dg.AssetCheckSpec]:
    from pipelines.quality.gx_validation import suite_check_names
    from pipelines.quality.publish import MART_SUITE

    specs = [dg.AssetCheckSpec(name, asset=PUBLISH_KEY, description=f"{severity}: expectations/suites/{MART_SUITE}.json")
             for name, severity in suite_check_names(MART_SUITE)]
    specs.append(dg.AssetCheckSpec("departments_published", asset=PUBLISH_KEY,
                                   description="warn: every department's figures were published in this run"))
    return specs


def _dbt_test_severities() -> dict[str, str]:
    """dbt test name -> critical (dbt severity error) | warn, from the prepared manifest."""
    import json

    from pipelines.transform.project import MANIFEST

    try:
        nodes = json.loads(MANIFEST.read_text())["nodes"].values()
    except (OSError, ValueError, KeyError):
        return {}
    return {n["name"]: "warn" if str(n.get("config", {}).get("severity", "error")).lower() == "warn" else "critical"
            for n in nodes if n.get("resource_type") == "test"}


def dbt_check_results(context: dg.AssetExecutionContext) -> list[dict]:
    """The run's dbt tests (asset check evaluations on dbt models), as check result rows, so
    the audit trail holds every check that ran, not only the GX ones."""
    severities = _dbt_test_severities()
    out = []
    records = context.instance.get_records_for_run(
        run_id=context.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    for rec in records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        key = ev.asset_key
        if key.path[0] in _STORED_ELSEWHERE:
            continue
        meta = {k: getattr(v, "value", v) for k, v in (ev.metadata or {}).items()}
        failures = meta.get("dagster_dbt/failed_row_count", meta.get("failures"))
        out.append({
            "batch_id": f"dbt@{context.run_id}", "source_id": f"dbt:{key.to_user_string()}",
            "suite": "dbt", "check_name": ev.check_name, "expectation_type": "dbt test",
            "severity": severities.get(ev.check_name,
                                       "critical" if ev.severity == dg.AssetCheckSeverity.ERROR else "warn"),
            "success": bool(ev.passed),
            "observed": f"{failures} failing row(s)" if failures is not None else ("passed" if ev.passed else "failed"),
            "expected": "0 failing rows", "unexpected_count": int(failures or 0),
        })
    return out


def build_publish_asset() -> dg.AssetsDefinition:
    @dg.asset(key=PUBLISH_KEY, group_name="marts", deps=[DRIFT_KEY, *MARTS, *LANDING],
              kinds={"python", "duckdb", "great_expectations"}, owners=[DATA_TEAM_OWNER],
              check_specs=_mart_check_specs())
    def kpi_publication(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource):
        """Publishes each department's KPI figures (publish.kpi_status, history in
        publish.kpi_figures and publish.decisions) unless a critical check failed on its latest
        batches or on its figures (the mart contract, expectations/suites/mart_fct_kpi_progress.json):
        then its previously published figures stay, marked stale. Every figure carries its data
        trust (trusted / stale / failed_checks / anomalous) and evidence (file, sha256, rows, run)."""
        from pipelines.quality.publish import publish

        dbt_checks = dbt_check_results(context)
        with connect(kpiwatch.warehouse) as con:
            findings = rows(con, "select * from quality.drift_findings where run_id = ?", [context.run_id])
            report = publish(con, context.run_id, kpiwatch.reporting_date(context), kpiwatch.run_now(context), findings,
                             dbt_checks)
        blocked = [d for d in report.decisions if not d.published]
        for d in blocked:
            context.log.warning(f"publication of {d.department_id} blocked: {d.reason}")
        yield dg.MaterializeResult(asset_key=PUBLISH_KEY, metadata={
            "published_departments": ", ".join(d.department_id for d in report.decisions if d.published) or "none",
            "blocked_departments": ", ".join(d.department_id for d in blocked) or "none",
            "figures_published": report.figures,
            "dbt_tests_recorded": len(dbt_checks),
        })
        for c in report.mart_checks:
            failed = bool(c.failed_departments) or c.table_level_failure
            yield dg.AssetCheckResult(
                asset_key=PUBLISH_KEY, check_name=c.check_name, passed=not failed, severity=SEVERITY[c.severity],
                metadata={"observed": c.observed, "expected": c.expected,
                          "departments": ", ".join(sorted(c.failed_departments)) or "none"})
        if not report.mart_checks:  # nothing to validate yet: report the checks as not applicable
            for spec in _mart_check_specs()[:-1]:
                yield dg.AssetCheckResult(asset_key=PUBLISH_KEY, check_name=spec.name, passed=True,
                                          metadata={"note": "no KPI figure to check"})
        yield dg.AssetCheckResult(
            asset_key=PUBLISH_KEY, check_name="departments_published", passed=not blocked,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"observed": "; ".join(f"{d.department_id}: {d.reason}" for d in blocked)[:2000] or "all published",
                      "expected": "every department published"})

    return kpi_publication
