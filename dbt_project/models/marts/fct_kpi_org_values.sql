-- Each KPI per organisation and period (e.g. an NHS provider), beside the KPI's expected
-- value. A compound organisation id "ORG|PART" (e.g. provider|department type) rolls up to
-- ORG. Ratios are recomputed from the organisation's summed parts, never averaged; status uses
-- the same rule as fct_kpi_progress (docs/kpi-model.md, "Status").

with

observations as (

    select * from {{ ref('int_observations__latest_revision') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

trajectory as (

    select * from {{ ref('int_kpi_trajectory') }}

),

per_org as (

    select
        observations.kpi_id,
        split_part(observations.org_id, '|', 1) as org_id,
        observations.period,
        kpis.aggregation,
        coalesce(kpis.scale, 1) as scale,
        sum(observations.value) as sum_value,
        avg(observations.value) as mean_value,
        sum(observations.numerator) as numerator,
        sum(observations.denominator) as denominator,
        count(*) as rows_combined
    from observations
    inner join kpis
        on observations.kpi_id = kpis.kpi_id
    group by
        observations.kpi_id,
        split_part(observations.org_id, '|', 1),
        observations.period,
        kpis.aggregation,
        coalesce(kpis.scale, 1)

),

valued as (

    select
        *,
        case aggregation
            when 'sum' then sum_value
            when 'mean' then mean_value
            when 'ratio' then scale * numerator / nullif(denominator, 0)
        end as actual
    from per_org

),

gaps as (

    select
        valued.kpi_id,
        valued.org_id,
        valued.period,
        valued.actual,
        valued.numerator,
        valued.denominator,
        valued.rows_combined,
        trajectory.expected_value,
        trajectory.tolerance,
        {{ kpiwatch.round_double(
            "case trajectory.direction
                when 'lower_is_better' then trajectory.expected_value - valued.actual
                else valued.actual - trajectory.expected_value
            end",
            9
        ) }} as performance_gap
    from valued
    left join trajectory
        on valued.kpi_id = trajectory.kpi_id
        and valued.period = trajectory.period

),

final as (

    select
        kpi_id,
        org_id,
        period,
        actual,
        numerator,
        denominator,
        rows_combined,
        expected_value,
        performance_gap,
        case
            when actual is null or expected_value is null then 'grey'
            when performance_gap >= 0 then 'green'
            when performance_gap >= -tolerance then 'amber'
            else 'red'
        end as status
    from gaps

)

select * from final
