-- Straight-line forecast of each KPI (docs/kpi-model.md, "Forecast"): ordinary least squares
-- of actual on period_end (in days) over the KPI's last 12 periods with an actual, up to and
-- including the row's period (so each row shows the forecast as it stood then). At least 6
-- periods are needed, otherwise the forecast is unknown. The line is evaluated at the row's
-- target_date; trend_slope / trend_intercept are kept so milestones can evaluate it at their
-- due date. will_miss = the forecast is worse than the target value in the KPI's direction.
-- No forecast to a deadline already reached: when the row's target_date is on or before the
-- period's end (past the last target, or a KPI judged by its standard alone) the forecast is
-- unknown, never a line drawn back into the past.

with

trajectory as (

    select * from {{ ref('int_kpi_trajectory') }}

),

points as (

    select
        kpi_id,
        period,
        period_end,
        actual,
        direction,
        target_value,
        target_date,
        cast({{ kpiwatch.days_between("date '1970-01-01'", 'period_end') }} as double precision) as x_days
    from trajectory

),

fits as (

    select
        *,
        count(*) over last_12 as trend_periods,
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
        case when trend_periods >= 6 then fitted_slope end as trend_slope,
        case when trend_periods >= 6 then fitted_intercept end as trend_intercept
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
        trend_slope,
        trend_intercept,
        forecast_value,
        case
            when forecast_value is null or target_value is null then 'unknown'
            when direction = 'lower_is_better' and forecast_value <= target_value then 'on_track'
            when direction = 'lower_is_better' then 'will_miss'
            when forecast_value >= target_value then 'on_track'
            else 'will_miss'
        end as forecast_status
    from forecasts

)

select * from final
