-- The year-to-date trajectory of a cumulative KPI (year_to_date: computed) with annual targets
-- in the catalog (docs/kpi-model.md, "Cumulative KPIs"): for each period, the target due at the
-- end of the period's year (the first target due on or after the period's end and before the
-- next year starts; of several points for one date the latest effective_from not after as_of
-- wins), and the expected year-to-date value, growing from 0 at the year's start to the target
-- on its due date in proportion to the days elapsed:
--   ytd_expected = annual_target * (days(year_start, period_end) + 1) / (days(year_start, due) + 1)

with

kpi_values as (

    select * from {{ ref('int_kpi_values') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

targets as (

    select * from {{ ref('stg_catalog__targets') }}

),

settings as (

    select * from {{ ref('stg_catalog__settings') }}

),

candidates as (

    select
        kpi_values.kpi_id,
        kpi_values.period,
        kpi_values.period_end,
        kpi_values.year_start,
        targets.point_value,
        targets.point_date,
        row_number() over (
            partition by kpi_values.kpi_id, kpi_values.period
            order by targets.point_date, targets.effective_from desc nulls last
        ) as target_rank
    from kpi_values
    inner join kpis
        on kpi_values.kpi_id = kpis.kpi_id
    inner join targets
        on kpi_values.kpi_id = targets.kpi_id
        and targets.point_type = 'target'
        and targets.point_date >= kpi_values.period_end
        and targets.point_date < cast(kpi_values.year_start + interval '1 year' as date)
    cross join settings
    where kpis.year_to_date = 'computed'
        and coalesce(kpis.targets_from, 'catalog') = 'catalog'
        and coalesce(targets.effective_from, date '0001-01-01') <= settings.as_of_date

),

final as (

    select
        kpi_id,
        period,
        point_value as annual_target,
        point_date as annual_target_date,
        cast(
            point_value
            * ({{ kpiwatch.days_between('year_start', 'period_end') }} + 1)
            / ({{ kpiwatch.days_between('year_start', 'point_date') }} + 1)
            as double precision
        ) as ytd_expected
    from candidates
    where target_rank = 1

)

select * from final
