-- One value per KPI x period: the latest revision of each organisation, combined by the KPI's
-- aggregation. Ratios are recomputed from their summed parts (scale * sum(numerator) /
-- sum(denominator)), never averaged. Periods whose value cannot be computed (e.g. a ratio
-- whose denominators sum to 0) are dropped: they have no actual.
-- A table, not a view: the trajectory, status, forecast and trust models all read it, and it
-- aggregates every organisation's latest revision (docs/scale.md).

{{ config(materialized='table') }}

with

observations as (

    select * from {{ ref('int_observations__latest_revision') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

per_period as (

    select
        observations.kpi_id,
        observations.period,
        kpis.frequency,
        kpis.aggregation,
        coalesce(kpis.scale, 1) as scale,
        count(*) as org_count,
        sum(observations.value) as sum_value,
        avg(observations.value) as mean_value,
        count(observations.value) as value_count,
        sum(observations.numerator) as numerator,
        sum(observations.denominator) as denominator,
        count(observations.numerator) as numerator_count,
        count(observations.denominator) as denominator_count,
        -- targets delivered with the data (targets_from: source); 0 means "no target set"
        sum(nullif(observations.target, 0)) as sum_target,
        avg(nullif(observations.target, 0)) as mean_target,
        -- the batch that delivered the latest revision among the organisations
        {{ kpiwatch.first_ordered(
            'observations.batch_id',
            'observations.loaded_at desc nulls last, '
                ~ kpiwatch.bytewise('observations.batch_id') ~ ' desc nulls last'
        ) }} as latest_batch_id,
        max(observations.loaded_at) as latest_loaded_at
    from observations
    inner join kpis
        on observations.kpi_id = kpis.kpi_id
    group by
        observations.kpi_id,
        observations.period,
        kpis.frequency,
        kpis.aggregation,
        coalesce(kpis.scale, 1)

),

aggregated as (

    select
        *,
        {{ kpiwatch.period_end('period', 'frequency') }} as period_end,
        case aggregation
            when 'sum' then sum_value
            when 'mean' then mean_value
            when 'ratio' then
                case
                    -- every organisation delivered both parts: recompute from the parts
                    when numerator_count = org_count and denominator_count = org_count
                        then scale * numerator / nullif(denominator, 0)
                    -- a single organisation that delivered only the ratio itself: nothing
                    -- is averaged, so its value is the KPI's value
                    when org_count = 1 then sum_value
                end
        end as actual,
        case when aggregation = 'sum' then sum_target else mean_target end as period_target
    from per_period

),

final as (

    select
        kpi_id,
        period,
        period_end,
        actual,
        numerator,
        denominator,
        org_count,
        period_target,
        latest_batch_id,
        latest_loaded_at
    from aggregated
    where actual is not null

)

select * from final
