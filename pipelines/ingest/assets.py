"""One ingest asset per catalog source, the landing table asset, and the drop-folder sensor."""

import dagster as dg

from pipelines.catalog.loader import Catalog
from pipelines.ingest.landing import OWN_CHECKS, PRE_SUITE_CHECKS, SourceReport, ingest_source
from pipelines.quality.contracts import source_suite_name
from pipelines.quality.gx_validation import suite_check_names
from pipelines.resources import KpiwatchResource
from pipelines.warehouse import connect, ensure_landing

SEVERITY = {"critical": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}
from pipelines.catalog.assets import CATALOG_KEYS
from pipelines.config import DATA_TEAM_OWNER

LANDED = dg.AssetKey(["raw", "observations"])
# The landing tables dbt reads; raw.observations carries the accounting check.
LANDING_KEYS = [LANDED, dg.AssetKey(["raw", "batches"]), dg.AssetKey(["raw", "quarantine"]),
                dg.AssetKey(["quality", "check_results"])]


def check_names(source_id: str) -> list[tuple[str, str]]:
    """Every check a source's ingest asset reports, with its severity, in a stable order: the
    kpiwatch checks that run before the source's GX suite, the suite, then the rest."""
    pre = [(n, s) for n, s in OWN_CHECKS.items() if n in PRE_SUITE_CHECKS]
    post = [(n, s) for n, s in OWN_CHECKS.items() if n not in PRE_SUITE_CHECKS]
    return pre + suite_check_names(source_suite_name(source_id)) + post


def ingest_key(source_id: str) -> dg.AssetKey:
    return dg.AssetKey(["ingest", source_id])


def _check_results(key: dg.AssetKey, report: SourceReport):
    for name, severity in check_names(report.source_id):
        per_batch = []
        for b in report.batches:
            per_batch += [(b, o) for o in b.outcomes if o.check_name == name]
        if (report.error or report.failures) and name == "columns_present":
            yield dg.AssetCheckResult(
                asset_key=key, check_name=name, passed=False, severity=SEVERITY[severity],
                metadata={"observed": "; ".join(filter(None, [report.error, *report.failures]))[:2000],
                          "expected": "a readable source"},
            )
            continue
        if not per_batch:
            yield dg.AssetCheckResult(
                asset_key=key, check_name=name, passed=True, severity=SEVERITY[severity],
                metadata={"batches_checked": 0, "note": "no new batch to check in this run"},
            )
            continue
        failed = [(b, o) for b, o in per_batch if not o.success]
        shown = failed or per_batch
        yield dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=not failed, severity=SEVERITY[severity],
            metadata={
                "batches_checked": len(per_batch),
                "batches_failed": len(failed),
                "unexpected_rows": sum(o.unexpected_count for _, o in per_batch),
                "observed": "; ".join(f"{b.source_file or b.batch_id}: {o.observed}" for b, o in shown)[:2000],
                "expected": shown[0][1].expected,
            },
        )


def ingest_owners(departments: dict[str, dict]) -> list[str]:
    """The department head (by email) owns its ingest assets; else the department's team. A
    shared source (no `department`) is owned by every department it feeds."""
    owners = []
    for dept_id, dept in sorted(departments.items()):
        email = ((dept or {}).get("head") or {}).get("email")
        owner = email or f"team:{dept_id}"
        if owner not in owners:
            owners.append(owner)
    return owners or [DATA_TEAM_OWNER]


def build_ingest_asset(source_id: str, source: dict, departments: dict[str, dict] | None = None) -> dg.AssetsDefinition:
    """`departments`: id -> catalog entry of the departments the source feeds (its own, or for
    a shared source those of its KPIs)."""
    if departments is None:
        departments = {source["department"]: {}} if source.get("department") else {}
    fed = ", ".join(sorted(departments)) or "none yet"
    where = f"department {source['department']}" if source.get("department") else f"shared by departments {fed}"
    key = ingest_key(source_id)
    suite = source_suite_name(source_id)
    specs = [
        dg.AssetCheckSpec(name, asset=key, description=f"{severity}: see expectations/suites/{suite}.json and "
                                                       "pipelines/ingest/landing.py (docs/quality.md)")
        for name, severity in check_names(source_id)
    ]
    kinds = source["kind"]

    @dg.asset(
        key=key,
        group_name="ingest",
        deps=CATALOG_KEYS,
        check_specs=specs,
        kinds={kinds, "duckdb", "great_expectations"},
        tags={"department": source.get("department") or "shared", "source_kind": source["kind"]},
        owners=ingest_owners(departments),
        description=(
            f"Lands new batches of source `{source_id}` ({source['kind']}, {where}) into raw.observations; rejected rows go to raw.quarantine "
            "with a named reason. Each batch's schema is checked against the source's contract and its "
            f"rows are validated with the `{source_suite_name(source_id)}` GX suite (docs/quality.md)."
        ),
    )
    def _ingest(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource):
        catalog: Catalog = kpiwatch.catalog()
        with connect(kpiwatch.warehouse) as con:
            report = ingest_source(con, catalog, source_id, kpiwatch.data_dir, kpiwatch.reporting_date(context),
                                   context.run_id, now=kpiwatch.run_now(context))
        if report.error:
            context.log.error(f"source {source_id} could not be read: {report.error}")
        for b in report.batches:
            # A refused file is an error the user sees in the `kpiwatch run` output, by name.
            log = context.log.error if b.problem and not b.rows_accepted else context.log.info
            log(b.message())
        for failure in report.failures:
            context.log.error(f"{failure} (nothing recorded; read again by the next run)")
        for note in report.notes:
            context.log.warning(note)
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "new_batches": len(report.batches),
                "rows_in": report.rows_in,
                "rows_landed": report.rows_accepted,
                "rows_quarantined": report.rows_quarantined,
                "source_error": report.error or "",
            },
        )
        yield from _check_results(key, report)

    return _ingest


def build_landing_asset(ingest_keys: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name="landed_observations",
        group_name="ingest",
        specs=[dg.AssetSpec(k, deps=ingest_keys, kinds={"duckdb"}, owners=[DATA_TEAM_OWNER], description=f"{'.'.join(k.path)}: landing table, appended by the ingest assets")
               for k in LANDING_KEYS],
        check_specs=[dg.AssetCheckSpec("rows_accounted", asset=LANDED,
                                       description="critical: every batch's landed + quarantined rows equal its input rows")],
    )
    def landed_observations(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource):
        """The landing tables as a whole (raw.observations, raw.batches, raw.quarantine,
        quality.check_results): what dbt reads. Its check proves no input row was lost."""
        with connect(kpiwatch.warehouse) as con:
            ensure_landing(con)
            totals = con.execute(
                "select count(*), coalesce(sum(rows_in), 0), coalesce(sum(rows_accepted), 0), "
                "coalesce(sum(rows_quarantined), 0) from raw.batches"
            ).fetchone()
            mismatched = con.execute(
                """
                select b.batch_id, b.rows_in, coalesce(o.n, 0) as landed, coalesce(q.n, 0) as quarantined
                from raw.batches b
                left join (select batch_id, count(*) n from raw.observations group by batch_id) o using (batch_id)
                left join (select batch_id, count(*) n from raw.quarantine group by batch_id) q
                    using (batch_id)
                where b.rows_in <> coalesce(o.n, 0) + coalesce(q.n, 0) or b.rows_accepted <> coalesce(o.n, 0)
                """
            ).fetchall()
        metadata = {"batches": totals[0], "rows_in": totals[1], "rows_landed": totals[2], "rows_quarantined": totals[3]}
        for key in LANDING_KEYS:
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        yield dg.AssetCheckResult(
            asset_key=LANDED, check_name="rows_accounted", passed=not mismatched,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "observed": f"{len(mismatched)} batches where landed + quarantined != rows in",
                "expected": "0",
                "mismatched": str(mismatched[:20]),
            },
        )

    return landed_observations


def build_drop_folder_sensor(catalog: Catalog, job_name: str) -> dg.SensorDefinition:
    """Start a run when a new file lands in any file source's drop folder."""
    file_sources = {sid: s for sid, s in catalog.sources.items() if s["kind"] in ("csv", "excel", "parquet")}

    @dg.sensor(name="new_source_files", job_name=job_name, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Starts a full run when a new or changed file appears in a source's drop folder.")
    def _sensor(context: dg.SensorEvaluationContext, kpiwatch: KpiwatchResource):
        from pipelines.ingest.readers import source_files

        found = []
        for sid, src in sorted(file_sources.items()):
            for path in source_files(src, kpiwatch.data_dir):
                st = path.stat()
                found.append(f"{sid}:{path.name}:{st.st_size}:{st.st_mtime_ns}")
        new = [f for f in found if f not in set((context.cursor or "").split("\n"))]
        if not new:
            return dg.SkipReason("no new files in the drop folders")
        context.update_cursor("\n".join(found))
        return dg.RunRequest(run_key="|".join(sorted(new)), tags={"kpiwatch/trigger": "new_files"})

    return _sensor
