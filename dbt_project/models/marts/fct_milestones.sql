-- One row per milestone with its state (docs/kpi-model.md, "Milestones"). Each milestone
-- names its test:
--   by_date (default): met when the KPI reached the threshold (>= for higher_is_better, <= for
--     lower_is_better) in any period ending on or before due_date (and starting on or after
--     from_date, when given); met_period is the first such period.
--   in_period: met when the KPI reached the threshold in the period that contains due_date,
--     judged on that period alone ("76% in March 2024"): an earlier period above the threshold
--     does not count; judged_period / judged_actual are that period and its value.
--   manual: met when recorded as completed (completed_on on or before due_date).
-- A completion recorded by hand (completed_on <= due_date) also meets a by_date or in_period
-- milestone the data has not met; met_how says which: 'data' or 'manual'.
-- States:
--   met;
--   missed:   not met and the verdict is final (below) with the deciding data in: for
--             in_period, the judged period landed short; for by_date, periods in the window
--             landed and none reached the threshold; for manual, the due date has passed;
--   no_data:  the verdict is final but the deciding data never arrived (in_period: the
--             judged period; by_date: any period in the window) - "no data", not "missed";
--   at_risk:  not met, not final, and the KPI's current straight-line forecast
--             (int_kpi_forecast, latest period) at due_date does not reach the threshold;
--   upcoming: otherwise (including when there is no forecast: fewer than 6 periods).
-- Final verdict: the values of the periods ending by the due date land lag_days after those
-- periods end, so right after the due date a milestone may still be met by data not yet
-- delivered. The verdict is final once a period ending on or after due_date has landed, or
-- once due_date + the source's lag_days <= as_of (the data is then overdue, and
-- fct_source_freshness says so); an in_period milestone is also final as soon as its judged
-- period has landed.
-- No forecast into the past: the forecast is evaluated at due_date only when due_date is
-- after the KPI's latest period end.

with

milestones as (

    select * from {{ ref('stg_catalog__milestones') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

sources as (

    select * from {{ ref('stg_catalog__sources') }}

),

kpi_values as (

    select * from {{ ref('int_kpi_values') }}

),

forecasts as (

    select * from {{ ref('int_kpi_forecast') }}

),

settings as (

    select * from {{ ref('stg_catalog__settings') }}

),

ranked_values as (

    select
        kpi_id,
        period,
        period_end,
        actual,
        row_number() over (partition by kpi_id order by period desc) as period_rank
    from kpi_values

),

latest_values as (

    select
        kpi_id,
        period as latest_period,
        period_end as latest_period_end,
        actual as latest_actual
    from ranked_values
    where period_rank = 1

),

ranked_trends as (

    select
        kpi_id,
        trend_slope,
        trend_intercept,
        row_number() over (partition by kpi_id order by period desc) as period_rank
    from forecasts

),

latest_trends as (

    select kpi_id, trend_slope, trend_intercept
    from ranked_trends
    where period_rank = 1

),

-- by_date: the periods in the window (ending by due_date, starting on or after from_date)
windowed as (

    select
        milestones.milestone_id,
        kpi_values.period,
        case
            when kpis.direction = 'lower_is_better' then kpi_values.actual <= milestones.threshold
            else kpi_values.actual >= milestones.threshold
        end as reached
    from milestones
    inner join kpis
        on milestones.kpi_id = kpis.kpi_id
    inner join kpi_values
        on milestones.kpi_id = kpi_values.kpi_id
        and kpi_values.period_end <= milestones.due_date
        and kpi_values.period >= coalesce(milestones.from_date, date '0001-01-01')
    where milestones.test = 'by_date'

),

by_date as (

    select
        milestone_id,
        min(period) filter (where reached) as met_period,
        count(*) as window_periods
    from windowed
    group by milestone_id

),

-- in_period: the one period that contains due_date
in_period as (

    select
        milestones.milestone_id,
        kpi_values.period as judged_period,
        kpi_values.actual as judged_actual,
        case
            when kpis.direction = 'lower_is_better' then kpi_values.actual <= milestones.threshold
            else kpi_values.actual >= milestones.threshold
        end as reached
    from milestones
    inner join kpis
        on milestones.kpi_id = kpis.kpi_id
    inner join kpi_values
        on milestones.kpi_id = kpi_values.kpi_id
        and kpi_values.period <= milestones.due_date
        and kpi_values.period_end >= milestones.due_date
    where milestones.test = 'in_period'

),

joined as (

    select
        milestones.*,
        kpis.direction,
        coalesce(sources.lag_days, 0) as lag_days,
        latest_values.latest_actual,
        latest_values.latest_period,
        latest_values.latest_period_end,
        case
            when milestones.test = 'by_date' then by_date.met_period
            when in_period.reached then in_period.judged_period
        end as met_period,
        coalesce(by_date.window_periods, 0) as window_periods,
        in_period.judged_period,
        in_period.judged_actual,
        case
            when milestones.test = 'by_date' then by_date.met_period is not null
            when milestones.test = 'in_period' then coalesce(in_period.reached, false)
            else false
        end as met_by_data,
        coalesce(milestones.completed_on <= milestones.due_date, false) as met_by_hand,
        case
            when latest_values.latest_period_end is null
                or milestones.due_date > latest_values.latest_period_end
                then {{ kpiwatch.round_double(
                    "latest_trends.trend_intercept + latest_trends.trend_slope * "
                        ~ kpiwatch.days_between("date '1970-01-01'", 'milestones.due_date'),
                    6
                ) }}
        end as forecast_value,
        settings.as_of_date
    from milestones
    cross join settings
    left join kpis
        on milestones.kpi_id = kpis.kpi_id
    left join sources
        on kpis.source_id = sources.source_id
    left join latest_values
        on milestones.kpi_id = latest_values.kpi_id
    left join latest_trends
        on milestones.kpi_id = latest_trends.kpi_id
    left join by_date
        on milestones.milestone_id = by_date.milestone_id
    left join in_period
        on milestones.milestone_id = in_period.milestone_id

),

verdicts as (

    select
        *,
        due_date < as_of_date
        and (
            kpi_id is null
            or test = 'manual'
            or latest_period_end >= due_date
            or due_date + lag_days <= as_of_date
        ) as is_final
    from joined

),

states as (

    select
        *,
        case
            when met_by_data or met_by_hand then 'met'
            when test = 'in_period' and judged_period is not null then 'missed'
            when not is_final and direction = 'lower_is_better' and forecast_value > threshold
                then 'at_risk'
            when not is_final and direction = 'higher_is_better' and forecast_value < threshold
                then 'at_risk'
            when not is_final then 'upcoming'
            when test = 'manual' then 'missed'
            when test = 'in_period' then 'no_data'
            when window_periods = 0 then 'no_data'
            else 'missed'
        end as state,
        case
            when met_by_data then 'data'
            when met_by_hand then 'manual'
        end as met_how
    from verdicts

),

final as (

    select
        milestone_id,
        title,
        department_id,
        kpi_id,
        test,
        threshold,
        due_date,
        from_date,
        owner_name,
        owner_slack,
        latest_actual,
        latest_period,
        met_period,
        judged_period,
        judged_actual,
        forecast_value,
        state,
        met_how,
        completed_on,
        completed_by,
        cast({{ kpiwatch.days_between('as_of_date', 'due_date') }} as integer) as days_to_due
    from states

)

select * from final
