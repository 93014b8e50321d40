-- One row per catalog KPI with its department, source, baseline and targets (as in effect on
-- as_of; see int_kpi_anchors). next_target_* is the first target due on or after as_of,
-- final_target_* the last one. due_period is the period due by as_of (int_kpi_due) and
-- figure_missing says the KPI has no figure for it.

with

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

departments as (

    select * from {{ ref('stg_catalog__departments') }}

),

sources as (

    select * from {{ ref('stg_catalog__sources') }}

),

anchors as (

    select * from {{ ref('int_kpi_anchors') }}

),

settings as (

    select * from {{ ref('stg_catalog__settings') }}

),

due as (

    select * from {{ ref('int_kpi_due') }}

),

anchor_summary as (

    select
        anchors.kpi_id,
        max(anchors.anchor_value) filter (where anchors.anchor_type = 'baseline') as baseline_value,
        max(anchors.anchor_date) filter (where anchors.anchor_type = 'baseline') as baseline_date,
        count(*) filter (where anchors.anchor_type = 'target') as target_count,
        {{ kpiwatch.arg_min(
            'anchors.anchor_value',
            'anchors.anchor_date',
            where="anchors.anchor_type = 'target' and anchors.anchor_date >= settings.as_of_date"
        ) }} as next_target_value,
        min(anchors.anchor_date) filter (
            where anchors.anchor_type = 'target' and anchors.anchor_date >= settings.as_of_date
        ) as next_target_date,
        {{ kpiwatch.arg_max(
            'anchors.anchor_value',
            'anchors.anchor_date',
            where="anchors.anchor_type = 'target'"
        ) }} as final_target_value,
        max(anchors.anchor_date) filter (where anchors.anchor_type = 'target') as final_target_date
    from anchors
    cross join settings
    group by anchors.kpi_id

),

final as (

    select
        kpis.kpi_id,
        kpis.kpi_name,
        kpis.kpi_code,
        kpis.department_id,
        departments.department_name,
        departments.channel as department_channel,
        departments.head_name as department_head_name,
        departments.head_slack as department_head_slack,
        kpis.source_id,
        sources.source_kind,
        sources.cadence as source_cadence,
        sources.lag_days as source_lag_days,
        kpis.owner_name,
        kpis.owner_slack,
        kpis.unit,
        kpis.direction,
        kpis.frequency,
        kpis.aggregation,
        kpis.scale,
        kpis.tolerance,
        kpis.tolerance_kind,
        kpis.decimals,
        kpis.fiscal_start_month,
        kpis.trajectory,
        kpis.methodology,
        kpis.tags,
        anchor_summary.baseline_value,
        anchor_summary.baseline_date,
        cast(coalesce(anchor_summary.target_count, 0) as integer) as target_count,
        anchor_summary.next_target_value,
        anchor_summary.next_target_date,
        anchor_summary.final_target_value,
        anchor_summary.final_target_date,
        due.due_period,
        due.due_period_label,
        due.latest_period,
        due.figure_missing
    from kpis
    left join departments
        on kpis.department_id = departments.department_id
    left join sources
        on kpis.source_id = sources.source_id
    left join anchor_summary
        on kpis.kpi_id = anchor_summary.kpi_id
    left join due
        on kpis.kpi_id = due.kpi_id

)

select * from final
