-- One row per catalog source: its latest landed period against the period expected by
-- as_of (logic in int_source_freshness, shared with the KPIs' data trust).

with

freshness as (

    select * from {{ ref('int_source_freshness') }}

),

final as (

    select
        source_id,
        department_id,
        cadence,
        lag_days,
        fiscal_start_month,
        latest_period,
        expected_period,
        is_overdue,
        periods_overdue,
        last_loaded_at
    from freshness

)

select * from final
