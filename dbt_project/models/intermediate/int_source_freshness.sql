-- Freshness of each catalog source (docs/kpi-model.md, "Source freshness").
-- A period is due lag_days after it ends, so the expected latest period is the latest period
-- (by the source's cadence) with period_end + lag_days <= as_of, i.e. the period that ends
-- on or before as_of - lag_days: truncate (as_of - lag_days + 1 day) to the cadence's period
-- (ISO week, month, quarter, year, or fiscal year starting in its KPIs' start month) and step
-- back one period. A source whose latest landed period is before that is overdue;
-- periods_overdue counts the missing periods (null when nothing has ever landed).

with

sources as (

    select * from {{ ref('stg_catalog__sources') }}

),

observations as (

    select * from {{ ref('stg_raw__observations') }}

),

batches as (

    select * from {{ ref('stg_raw__batches') }}

),

settings as (

    select * from {{ ref('stg_catalog__settings') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

landed as (

    select source_id, max(period) as latest_period
    from observations
    group by source_id

),

loads as (

    select source_id, max(loaded_at) as last_loaded_at
    from batches
    group by source_id

),

-- the year start of each fiscal-year source: its KPIs' (they share one source, so one year)
year_starts as (

    select source_id, min(fiscal_start_month) as fiscal_start_month
    from kpis
    group by source_id

),

cutoffs as (

    select
        sources.source_id,
        sources.department_id,
        sources.cadence,
        coalesce(sources.lag_days, 0) as lag_days,
        settings.as_of_date,
        coalesce(year_starts.fiscal_start_month, 4) as fiscal_start_month,
        -- the latest period ending on or before this day is the one expected by as_of
        cast(settings.as_of_date - coalesce(sources.lag_days, 0) + 1 as timestamp) as cutoff
    from sources
    cross join settings
    left join year_starts
        on sources.source_id = year_starts.source_id

),

expected as (

    select
        source_id,
        department_id,
        cadence,
        lag_days,
        as_of_date,
        fiscal_start_month,
        {{ kpiwatch.last_period_ended_by('cutoff', 'cadence', 'fiscal_start_month') }} as expected_period
    from cutoffs

),

final as (

    select
        expected.source_id,
        expected.department_id,
        expected.cadence,
        expected.lag_days,
        -- the year start of its KPIs: labels a quarter as a fiscal quarter ("2014/15 Q2")
        expected.fiscal_start_month,
        landed.latest_period,
        expected.expected_period,
        coalesce(landed.latest_period < expected.expected_period, true) as is_overdue,
        case
            -- greatest() ignores nulls: keep "nothing landed" unknown rather than 0
            when landed.latest_period is not null then cast(
                greatest(
                    case expected.cadence
                        when 'weekly' then {{ kpiwatch.integer_divide(
                            kpiwatch.days_between('landed.latest_period', 'expected.expected_period'), '7'
                        ) }}
                        else {{ kpiwatch.integer_divide(
                            kpiwatch.months_between('landed.latest_period', 'expected.expected_period'),
                            "case expected.cadence when 'quarterly' then 3 when 'annual' then 12
                                when 'fiscal_year' then 12 else 1 end"
                        ) }}
                    end,
                    0
                ) as integer
            )
        end as periods_overdue,
        loads.last_loaded_at
    from expected
    left join landed
        on expected.source_id = landed.source_id
    left join loads
        on expected.source_id = loads.source_id

)

select * from final
