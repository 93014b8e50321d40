-- The period each KPI is due to have a figure for by as_of (docs/kpi-model.md, "A missing
-- period"): the latest period of the KPI's own frequency whose period_end + its source's
-- lag_days is on or before as_of (as int_source_freshness does per source). A KPI whose latest
-- figure is older than that has no figure for its due period (figure_missing): the previous
-- figure is never its current one. A source shared by many KPIs can be up to date while one
-- KPI's row for the period was quarantined; this is per KPI.

with

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

sources as (

    select * from {{ ref('stg_catalog__sources') }}

),

settings as (

    select * from {{ ref('stg_catalog__settings') }}

),

kpi_values as (

    select * from {{ ref('int_kpi_values') }}

),

latest as (

    select kpi_id, max(period) as latest_period
    from kpi_values
    where actual is not null
    group by kpi_id

),

cutoffs as (

    select
        kpis.kpi_id,
        kpis.frequency,
        kpis.fiscal_start_month,
        coalesce(sources.lag_days, 0) as lag_days,
        cast(settings.as_of_date - coalesce(sources.lag_days, 0) + 1 as timestamp) as cutoff
    from kpis
    cross join settings
    left join sources
        on kpis.source_id = sources.source_id

),

due as (

    select
        kpi_id,
        frequency,
        fiscal_start_month,
        lag_days,
        {{ kpiwatch.last_period_ended_by('cutoff', 'frequency', 'fiscal_start_month') }} as due_period
    from cutoffs

),

final as (

    select
        due.kpi_id,
        due.due_period,
        {{ kpiwatch.period_label('due.due_period', 'due.frequency', 'due.fiscal_start_month') }} as due_period_label,
        latest.latest_period,
        {{ kpiwatch.period_label('latest.latest_period', 'due.frequency', 'due.fiscal_start_month') }}
            as latest_period_label,
        coalesce(latest.latest_period < due.due_period, true) as figure_missing
    from due
    left join latest
        on due.kpi_id = latest.kpi_id

)

select * from final
