-- Freshness of each catalog source (docs/kpi-model.md, "Source freshness").
-- A period is due lag_days after it ends, so the expected latest period is the latest period
-- (by the source's cadence) with period_end + lag_days <= as_of, i.e. the period that ends
-- on or before as_of - lag_days: truncate (as_of - lag_days + 1 day) to the month / quarter
-- and step back one period. A source whose latest landed period is before that is overdue;
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

expected as (

    select
        sources.source_id,
        sources.department_id,
        sources.cadence,
        coalesce(sources.lag_days, 0) as lag_days,
        settings.as_of_date,
        case
            when sources.cadence = 'quarterly' then cast(
                date_trunc(
                    'quarter',
                    cast(settings.as_of_date - coalesce(sources.lag_days, 0) + 1 as timestamp)
                )
                - interval '3 month' as date
            )
            else cast(
                date_trunc(
                    'month',
                    cast(settings.as_of_date - coalesce(sources.lag_days, 0) + 1 as timestamp)
                )
                - interval '1 month' as date
            )
        end as expected_period
    from sources
    cross join settings

),

final as (

    select
        expected.source_id,
        expected.department_id,
        expected.cadence,
        expected.lag_days,
        landed.latest_period,
        expected.expected_period,
        coalesce(landed.latest_period < expected.expected_period, true) as is_overdue,
        case
            -- greatest() ignores nulls: keep "nothing landed" unknown rather than 0
            when landed.latest_period is not null then cast(
                greatest(
                    {{ kpiwatch.integer_divide(
                        kpiwatch.months_between('landed.latest_period', 'expected.expected_period'),
                        "case when expected.cadence = 'quarterly' then 3 else 1 end"
                    ) }},
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
