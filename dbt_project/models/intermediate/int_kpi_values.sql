-- One value per KPI x period: the latest revision of each organisation, combined by the KPI's
-- aggregation. Ratios are recomputed from their summed parts (scale * sum(numerator) /
-- sum(denominator)), never averaged. `latest` (a stock) adds organisations' stocks at period end;
-- `as_published` (medians, percentiles) takes the figure published for the whole (org 'ALL')
-- as it is, never recomputed across organisations. Periods whose value cannot be computed (e.g. a ratio
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
        kpis.year_to_date,
        kpis.fiscal_start_month,
        coalesce(kpis.scale, 1) as scale,
        count(*) as org_count,
        sum(observations.value) as sum_value,
        -- the figure published for the whole (a row without an organisation: org_id 'ALL')
        max(observations.value) filter (where observations.org_id = 'ALL') as whole_value,
        avg(observations.value) as mean_value,
        count(observations.value) as value_count,
        sum(observations.numerator) as numerator,
        sum(observations.denominator) as denominator,
        count(observations.numerator) as numerator_count,
        count(observations.denominator) as denominator_count,
        -- targets delivered with the data (targets_from: source); null when none was set (an
        -- empty or marked cell, or one of the source's no_target_values)
        sum(observations.target) as sum_target,
        avg(observations.target) as mean_target,
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
        kpis.year_to_date,
        kpis.fiscal_start_month,
        coalesce(kpis.scale, 1)

),

aggregated as (

    select
        *,
        {{ kpiwatch.period_end('period', 'frequency') }} as period_end,
        case aggregation
            when 'sum' then sum_value
            -- a stock at period end (staff in post): organisations' stocks add up; periods never do
            when 'latest' then sum_value
            when 'mean' then mean_value
            -- a median or percentile cannot be re-aggregated: the whole's published figure is
            -- used as it is (a single organisation's figure is the whole's); organisations'
            -- figures without one published for the whole give no value
            when 'as_published' then
                case when org_count = 1 then sum_value else whole_value end
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
        case when aggregation in ('sum', 'latest') then sum_target else mean_target end as period_target,
        -- the start of the (fiscal) year the period belongs to, for year-to-date KPIs
        case when year_to_date is not null then cast(
            date_trunc('year', period - (fiscal_start_month - 1) * interval '1 month')
            + (fiscal_start_month - 1) * interval '1 month' as date
        ) end as year_start
    from per_period

),

-- year_to_date computed: the year's periods so far added up (a ratio from its summed parts,
-- as are targets delivered per period); delivered year-to-date figures are used as they are
accumulated as (

    select
        kpi_id,
        period,
        period_end,
        case
            when year_to_date = 'computed' and aggregation = 'ratio'
                then scale * sum(numerator) over year_so_far / nullif(sum(denominator) over year_so_far, 0)
            when year_to_date = 'computed' then sum(actual) over year_so_far
            else actual
        end as actual,
        case when year_to_date = 'computed' then sum(numerator) over year_so_far else numerator end
            as numerator,
        case when year_to_date = 'computed' then sum(denominator) over year_so_far else denominator end
            as denominator,
        org_count,
        case when year_to_date = 'computed' then sum(period_target) over year_so_far else period_target end
            as period_target,
        year_start,
        latest_batch_id,
        latest_loaded_at
    from aggregated
    where actual is not null
    window year_so_far as (
        partition by kpi_id, year_start order by period rows between unbounded preceding and current row
    )

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
        year_start,
        latest_batch_id,
        latest_loaded_at
    from accumulated
    where actual is not null

)

select * from final
