-- Straight-line forecast of each KPI (docs/kpi-model.md, "Forecast"): ordinary least squares
-- of actual on period_end (in days) over the KPI's last 12 periods with an actual, up to and
-- including the row's period (so each row shows the forecast as it stood then). A line needs
-- enough periods to show a trend: 6 for weekly and monthly KPIs, 4 quarters for a quarterly
-- KPI (a year), 3 years for a yearly one (trend_periods_needed); with fewer the forecast is
-- unknown and forecast_reason says why ("forecast needs 4 quarters, 2 so far"). The line is evaluated at the row's
-- target_date; trend_slope / trend_intercept are kept so milestones can evaluate it at their
-- due date. will_miss = the forecast is worse than the target value in the KPI's direction.
-- No forecast to a deadline already reached: when the row's target_date is on or before the
-- period's end (past the last target, or a KPI judged by its standard alone) the forecast is
-- unknown, never a line drawn back into the past.

with

trajectory as (

    select * from {{ ref('int_kpi_trajectory') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

points as (

    select
        trajectory.kpi_id,
        trajectory.period,
        trajectory.period_end,
        trajectory.actual,
        trajectory.direction,
        trajectory.target_value,
        trajectory.target_date,
        kpis.frequency,
        cast({{ kpiwatch.days_between("date '1970-01-01'", 'trajectory.period_end') }} as double precision) as x_days
    from trajectory
    inner join kpis
        on trajectory.kpi_id = kpis.kpi_id

),

fits as (

    select
        *,
        count(*) over last_12 as trend_periods,
        case frequency
            when 'quarterly' then 4
            when 'annual' then 3
            when 'fiscal_year' then 3
            else 6
        end as trend_periods_needed,
        regr_slope(actual, x_days) over last_12 as fitted_slope,
        regr_intercept(actual, x_days) over last_12 as fitted_intercept
    from points
    window last_12 as (
        partition by kpi_id order by period rows between 11 preceding and current row
    )

),

trends as (

    select
        *,
        case when trend_periods >= trend_periods_needed then fitted_slope end as trend_slope,
        case when trend_periods >= trend_periods_needed then fitted_intercept end as trend_intercept
    from fits

),

forecasts as (

    select
        *,
        -- rounded: the intercept sits at 1970-01-01, so the sum carries float noise
        case when target_date > period_end then
            {{ kpiwatch.round_double(
                "trend_intercept + trend_slope * " ~ kpiwatch.days_between("date '1970-01-01'", 'target_date'),
                6
            ) }}
        end as forecast_value
    from trends

),

final as (

    select
        kpi_id,
        period,
        cast(trend_periods as integer) as trend_periods,
        cast(trend_periods_needed as integer) as trend_periods_needed,
        trend_slope,
        trend_intercept,
        forecast_value,
        case
            when forecast_value is null or target_value is null then 'unknown'
            when direction = 'lower_is_better' and forecast_value <= target_value then 'on_track'
            when direction = 'lower_is_better' then 'will_miss'
            when forecast_value >= target_value then 'on_track'
            else 'will_miss'
        end as forecast_status,
        case
            when target_value is null then null
            when trend_periods < trend_periods_needed then
                'forecast needs ' || cast(trend_periods_needed as varchar) || ' '
                || case frequency
                    when 'weekly' then 'weeks'
                    when 'quarterly' then 'quarters'
                    when 'annual' then 'years'
                    when 'fiscal_year' then 'years'
                    else 'months'
                end
                || ', ' || cast(trend_periods as varchar) || ' so far'
            when target_date <= period_end then 'no target date ahead to forecast'
        end as forecast_reason
    from forecasts

)

select * from final
