-- Each KPI per organisation and period (e.g. an NHS provider), beside the KPI's expected
-- value. A compound organisation id "ORG|PART" (e.g. provider|department type) rolls up to
-- ORG. Ratios are recomputed from the organisation's summed parts, never averaged; status uses
-- the same rule as fct_kpi_progress (docs/kpi-model.md, "Status"): against the trajectory
-- where the KPI has an expected value, otherwise against the standard in effect for the
-- period (standard_met; green when met, red when not), else grey. fct_kpi_standard_orgs
-- counts the organisations that met the standard.

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

standards as (

    select * from {{ ref('int_kpi_standards') }}

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
            when 'latest' then sum_value
            when 'mean' then mean_value
            when 'ratio' then scale * numerator / nullif(denominator, 0)
            -- a published median or percentile: the organisation's own figure, never recombined
            -- from its parts
            when 'as_published' then case when rows_combined = 1 then sum_value end
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
        -- the tolerance in the KPI's unit (a share of the expected value or the band's
        -- nearer bound for tolerance_kind 'share', as int_kpi_status)
        case
            when coalesce(trajectory.tolerance_kind, 'amount') <> 'share' then trajectory.tolerance
            when trajectory.expected_value is not null
                then trajectory.tolerance * abs(trajectory.expected_value)
            when standards.band_lower is not null and valued.actual < standards.band_lower
                then trajectory.tolerance * abs(standards.band_lower)
            when standards.band_upper is not null then trajectory.tolerance * abs(standards.band_upper)
        end as tolerance,
        standards.standard_value,
        standards.band_lower,
        standards.band_upper,
        case
            when valued.actual is null then null
            when standards.band_lower is not null then
                {{ kpiwatch.round_double('valued.actual - standards.band_lower', 9) }} >= 0
                and {{ kpiwatch.round_double('standards.band_upper - valued.actual', 9) }} >= 0
            when standards.standard_value is null then null
            else {{ kpiwatch.round_double(
                "case trajectory.direction
                    when 'lower_is_better' then standards.standard_value - valued.actual
                    else valued.actual - standards.standard_value
                end",
                9
            ) }} >= 0
        end as standard_met,
        case when standards.band_lower is not null and valued.actual is not null then
            greatest(
                {{ kpiwatch.round_double('standards.band_lower - valued.actual', 9) }},
                {{ kpiwatch.round_double('valued.actual - standards.band_upper', 9) }},
                cast(0 as double precision)
            )
        end as band_distance,
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
    left join standards
        on valued.kpi_id = standards.kpi_id
        and valued.period = standards.period

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
        standard_value,
        band_lower,
        band_upper,
        standard_met,
        case
            when actual is null then 'grey'
            when expected_value is not null and performance_gap >= 0 then 'green'
            when expected_value is not null and performance_gap >= -{{ kpiwatch.round_double('tolerance', 9) }} then 'amber'
            when expected_value is not null then 'red'
            when standard_met then 'green'
            when band_distance <= {{ kpiwatch.round_double('tolerance', 9) }} then 'amber'
            when not standard_met then 'red'
            else 'grey'
        end as status
    from gaps

)

select * from final
