-- Status of each KPI x period against its trajectory (docs/kpi-model.md, "Status").
--   performance_gap = actual - expected (higher_is_better) or expected - actual (lower_is_better)
--   grey: no actual or no expected value; green: gap >= 0;
--   amber: -tolerance <= gap < 0; red: gap < -tolerance.
-- Gaps are rounded to 9 decimals so that a gap exactly on the tolerance edge is not pushed
-- to red (or a zero gap to amber) by floating-point noise from the linear interpolation.

with

trajectory as (

    select * from {{ ref('int_kpi_trajectory') }}

),

gaps as (

    select
        *,
        {{ kpiwatch.round_double('actual - expected_value', 9) }} as gap,
        {{ kpiwatch.round_double(
            "case
                when direction = 'lower_is_better' then expected_value - actual
                else actual - expected_value
            end",
            9
        ) }} as performance_gap
    from trajectory

),

statuses as (

    select
        *,
        case
            when performance_gap is null then 'grey'
            when performance_gap >= 0 then 'green'
            when performance_gap >= -tolerance then 'amber'
            else 'red'
        end as status
    from gaps

),

final as (

    select
        *,
        lag(status) over (partition by kpi_id order by period) as previous_status,
        row_number() over (partition by kpi_id order by period desc) = 1 as is_latest
    from statuses

)

select * from final
