-- Rule: a source is overdue exactly when nothing landed or its latest period is before the
-- expected one, and then periods_overdue is positive (or unknown when nothing landed); an
-- on-time source has periods_overdue = 0.
-- Why: "stale" data trust and the scorecard's source_overdue both hang on is_overdue; the
-- count is what the freshness alert reports.
with

freshness as (

    select * from {{ ref('fct_source_freshness') }}

),

final as (

    select *
    from freshness
    where is_overdue <> coalesce(latest_period < expected_period, true)
        or (is_overdue and latest_period is not null and not periods_overdue > 0)
        or (not is_overdue and periods_overdue <> 0)

)

select * from final
