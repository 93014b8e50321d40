-- Whether each KPI x period value can be trusted (docs/kpi-model.md, "Data trust"), kept
-- beside the status, never inside it.
--   failed_checks: a batch that delivered the value has a failed critical quality check.
--     Every batch that contributed a latest revision counts (a KPI combined over several
--     organisations can draw on several batches), not only latest_batch_id. A check judged for
--     one department (a shared source's rejection rate) counts for that department's KPIs only.
--   stale: the KPI has no figure for the period due by as_of (int_kpi_due: its row was
--     quarantined, or not sent) -- the latest figure is then an older period's -- or the KPI's
--     source is overdue. Applied to the KPI's latest period only: an older
--     period's value is not made less trustworthy by later deliveries going missing.
--   trusted: otherwise.

with

kpi_values as (

    select * from {{ ref('int_kpi_values') }}

),

revisions as (

    select * from {{ ref('int_observations__latest_revision') }}

),

check_results as (

    select * from {{ ref('stg_quality__check_results') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

freshness as (

    select * from {{ ref('int_source_freshness') }}

),

due as (

    select * from {{ ref('int_kpi_due') }}

),

contributing_batches as (

    select distinct kpi_id, period, batch_id
    from revisions

),

failed_checks as (

    select
        contributing_batches.kpi_id,
        contributing_batches.period,
        count(*) as failed_checks,
        {%- set failure = kpiwatch.bytewise(
            "contributing_batches.batch_id || ' (' || check_results.check_name || ')'"
        ) %}
        string_agg(distinct {{ failure }}, ', ' order by {{ failure }}) as failed_on
    from contributing_batches
    inner join kpis
        on contributing_batches.kpi_id = kpis.kpi_id
    inner join check_results
        on contributing_batches.batch_id = check_results.batch_id
        -- a check judged for one department (a shared source's rejection rate on that
        -- department's KPIs' rows) concerns that department's KPIs only
        and (check_results.department_id is null or check_results.department_id = kpis.department_id)
    where check_results.severity = 'critical'
        and not check_results.success
    group by contributing_batches.kpi_id, contributing_batches.period

),

joined as (

    select
        kpi_values.kpi_id,
        kpi_values.period,
        kpis.source_id,
        coalesce(failed_checks.failed_checks, 0) as failed_checks,
        failed_checks.failed_on,
        coalesce(freshness.is_overdue, false) as source_overdue,
        freshness.latest_period as source_latest_period,
        freshness.expected_period as source_expected_period,
        freshness.cadence as source_cadence,
        freshness.fiscal_start_month as source_fiscal_start_month,
        coalesce(due.figure_missing, false) as figure_missing,
        due.due_period_label,
        row_number() over (partition by kpi_values.kpi_id order by kpi_values.period desc) = 1
            as is_latest
    from kpi_values
    inner join kpis
        on kpi_values.kpi_id = kpis.kpi_id
    left join failed_checks
        on kpi_values.kpi_id = failed_checks.kpi_id
        and kpi_values.period = failed_checks.period
    left join freshness
        on kpis.source_id = freshness.source_id
    left join due
        on kpi_values.kpi_id = due.kpi_id

),

final as (

    select
        kpi_id,
        period,
        cast(failed_checks as integer) as failed_checks,
        source_overdue,
        case
            when failed_checks > 0 then 'failed_checks'
            when is_latest and (figure_missing or source_overdue) then 'stale'
            else 'trusted'
        end as data_trust,
        case
            when failed_checks > 0
                then 'critical quality check failed on batch ' || failed_on
            when is_latest and source_overdue
                then 'source ' || source_id || ' overdue: latest period '
                    || coalesce({{ kpiwatch.period_label('source_latest_period', 'source_cadence', 'source_fiscal_start_month') }}, 'none')
                    || ', expected ' || {{ kpiwatch.period_label('source_expected_period', 'source_cadence', 'source_fiscal_start_month') }}
            when is_latest and figure_missing
                then 'no figure for ' || due_period_label || ', the period due by now: this is an earlier period'
            when is_latest then 'all critical checks passed, source up to date'
            else 'all critical checks passed'
        end as data_trust_reason
    from joined

)

select * from final
