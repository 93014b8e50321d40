-- One row per KPI x period that has an actual: value, trajectory, standard, status, forecast
-- and data trust. The formulas live in the intermediate models (int_kpi_*), each with unit tests.

with

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

statuses as (

    select * from {{ ref('int_kpi_status') }}

),

forecasts as (

    select * from {{ ref('int_kpi_forecast') }}

),

data_trust as (

    select * from {{ ref('int_kpi_data_trust') }}

),

final as (

    select
        statuses.kpi_id,
        kpis.kpi_name,
        kpis.kpi_code,
        kpis.department_id,
        kpis.source_id,
        statuses.period,
        statuses.period_end,
        statuses.actual,
        statuses.numerator,
        statuses.denominator,
        statuses.baseline_value,
        statuses.baseline_date,
        statuses.target_value,
        statuses.target_date,
        statuses.expected_value,
        statuses.gap,
        statuses.performance_gap,
        statuses.status,
        statuses.judged_by,
        statuses.tolerance_amount,
        statuses.target_withdrawn,
        statuses.standard_value,
        statuses.band_lower,
        statuses.band_upper,
        statuses.standard_effective_from,
        statuses.standard_met,
        statuses.periods_met_last_12,
        statuses.periods_judged_last_12,
        statuses.consecutive_misses,
        statuses.previous_status,
        statuses.is_latest,
        forecasts.forecast_value,
        coalesce(forecasts.forecast_status, 'unknown') as forecast_status,
        forecasts.forecast_reason,
        forecasts.trend_periods,
        forecasts.trend_periods_needed,
        coalesce(data_trust.data_trust, 'trusted') as data_trust,
        data_trust.data_trust_reason,
        statuses.latest_batch_id
    from statuses
    inner join kpis
        on statuses.kpi_id = kpis.kpi_id
    left join forecasts
        on statuses.kpi_id = forecasts.kpi_id
        and statuses.period = forecasts.period
    left join data_trust
        on statuses.kpi_id = data_trust.kpi_id
        and statuses.period = data_trust.period

)

select * from final
