-- Status of each KPI x period (docs/kpi-model.md, "Status").
-- Against its trajectory, where it has an expected value (judged_by = 'trajectory'):
--   performance_gap = actual - expected (higher_is_better) or expected - actual (lower_is_better)
--   green: gap >= 0; amber: -tolerance <= gap < 0; red: gap < -tolerance.
-- Otherwise against its standing standard (judged_by = 'standard', int_kpi_standards): green
-- when the standard is met, red when it is not (a standard has no amber band).
-- A within_range KPI is judged against its band (judged_by = 'band'): green inside it, amber
-- up to `tolerance` outside it, red beyond.
-- grey: no actual, or neither an expected value nor a standard (a data-only indicator, or a
-- withdrawn target: "no target").
-- tolerance_amount is the tolerance in the KPI's unit: the tolerance itself (tolerance_kind
-- 'amount'), or tolerance x |what the figure is judged against| (tolerance_kind 'share',
-- "10%" = 0.10): the expected value on a trajectory, the nearer bound a band figure is outside.
-- The standard's columns are kept on every row, also when the trajectory judges the status
-- (a recovery trajectory beside the standard).
-- Gaps are rounded to 9 decimals so that a gap exactly on the tolerance edge is not pushed
-- to red (or a zero gap to amber) by floating-point noise from the linear interpolation.

with

trajectory as (

    select * from {{ ref('int_kpi_trajectory') }}

),

standards as (

    select * from {{ ref('int_kpi_standards') }}

),

gaps as (

    select
        trajectory.*,
        standards.standard_value,
        standards.band_lower,
        standards.band_upper,
        standards.band_distance,
        standards.standard_effective_from,
        standards.standard_met,
        standards.periods_met_last_12,
        standards.periods_judged_last_12,
        standards.consecutive_misses,
        {{ kpiwatch.round_double('actual - expected_value', 9) }} as gap,
        {{ kpiwatch.round_double(
            "case
                when direction = 'lower_is_better' then expected_value - actual
                else actual - expected_value
            end",
            9
        ) }} as performance_gap
    from trajectory
    left join standards
        on trajectory.kpi_id = standards.kpi_id
        and trajectory.period = standards.period

),

tolerances as (

    select
        *,
        {{ kpiwatch.round_double(
            "case
                when coalesce(tolerance_kind, 'amount') <> 'share' then tolerance
                when expected_value is not null then tolerance * abs(expected_value)
                when band_lower is not null and actual < band_lower then tolerance * abs(band_lower)
                when band_upper is not null then tolerance * abs(band_upper)
                when standard_value is not null then tolerance * abs(standard_value)
            end",
            9
        ) }} as tolerance_amount
    from gaps

),

statuses as (

    select
        *,
        case
            when performance_gap is not null and performance_gap >= 0 then 'green'
            when performance_gap is not null
                and performance_gap >= -tolerance_amount then 'amber'
            when performance_gap is not null then 'red'
            when standard_met then 'green'
            when band_distance <= tolerance_amount then 'amber'
            when not standard_met then 'red'
            else 'grey'
        end as status,
        case
            when performance_gap is not null then 'trajectory'
            when band_distance is not null then 'band'
            when standard_met is not null then 'standard'
        end as judged_by
    from tolerances

),

final as (

    select
        *,
        lag(status) over (partition by kpi_id order by period) as previous_status,
        row_number() over (partition by kpi_id order by period desc) = 1 as is_latest
    from statuses

)

select * from final
