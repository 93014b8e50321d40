-- One row per milestone with its state (docs/kpi-model.md, "Milestones"):
--   met:      the KPI reached the threshold (>= for higher_is_better, <= for lower_is_better)
--             in a period ending on or before due_date, or completed_on <= due_date;
--   missed:   not met and due_date < as_of, once the verdict is final (see below);
--   at_risk:  not met, not final, and the KPI's current straight-line forecast
--             (int_kpi_forecast, latest period) evaluated at due_date does not reach the
--             threshold;
--   upcoming: otherwise (including when there is no forecast: fewer than 6 periods).
-- Final verdict (a deviation from the doc's plain "due_date < as_of"): the values of the
-- periods ending by the due date land lag_days after those periods end, so right after the
-- due date a milestone may still be met by data not yet delivered. "missed" therefore waits
-- until a period ending on or after due_date has landed, or until due_date + the source's
-- lag_days <= as_of (the data is then overdue, and fct_source_freshness says so). Until
-- then the milestone stays at_risk / upcoming by its forecast, with a negative days_to_due.
-- met_period is the first period that reached the threshold (null when met manually).

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

reached as (

    select
        milestones.milestone_id,
        min(kpi_values.period) as met_period
    from milestones
    inner join kpis
        on milestones.kpi_id = kpis.kpi_id
    inner join kpi_values
        on milestones.kpi_id = kpi_values.kpi_id
        and kpi_values.period_end <= milestones.due_date
    where case
        when kpis.direction = 'lower_is_better' then kpi_values.actual <= milestones.threshold
        else kpi_values.actual >= milestones.threshold
    end
    group by milestones.milestone_id

),

joined as (

    select
        milestones.*,
        kpis.direction,
        coalesce(sources.lag_days, 0) as lag_days,
        latest_values.latest_actual,
        latest_values.latest_period,
        latest_values.latest_period_end,
        reached.met_period,
        {{ kpiwatch.round_double(
            "latest_trends.trend_intercept + latest_trends.trend_slope * "
                ~ kpiwatch.days_between("date '1970-01-01'", 'milestones.due_date'),
            6
        ) }} as forecast_value,
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
    left join reached
        on milestones.milestone_id = reached.milestone_id

),

states as (

    select
        *,
        case
            when met_period is not null or completed_on <= due_date then 'met'
            when due_date < as_of_date
                and (
                    kpi_id is null
                    or latest_period_end >= due_date
                    or due_date + lag_days <= as_of_date
                )
                then 'missed'
            when direction = 'lower_is_better' and forecast_value > threshold then 'at_risk'
            when direction = 'higher_is_better' and forecast_value < threshold then 'at_risk'
            else 'upcoming'
        end as state
    from joined

),

final as (

    select
        milestone_id,
        title,
        department_id,
        kpi_id,
        threshold,
        due_date,
        owner_name,
        owner_slack,
        latest_actual,
        latest_period,
        met_period,
        forecast_value,
        state,
        cast({{ kpiwatch.days_between('as_of_date', 'due_date') }} as integer) as days_to_due
    from states

)

select * from final
