-- Expected value of each KPI x period on its trajectory (docs/kpi-model.md, "Trajectory").
-- The period is placed on the segment A -> B with A.date <= period_end <= B.date (the earliest
-- such segment, so a period ending exactly on a target date is measured against that target):
--   linear: A.value + (B.value - A.value) * days(A.date, period_end) / days(A.date, B.date)
--   step:   A.value before B.date, B.value from B.date on
-- Before the baseline there is no expected value; after the last target the expected value
-- is the last target's value; a KPI with a baseline but no target has no expected value.
-- target_value / target_date are B (or the last target once past it).
-- KPIs with `targets_from: source` take each period's target from the data instead: the
-- expected value is that period's target (none when the source sent 0 or nothing: grey).
-- A withdrawn target (a `withdrawn` point in the catalog, point_type 'withdrawn'): periods
-- starting on or after its date have no target and no expected value ("no target").

with

kpi_values as (

    select * from {{ ref('int_kpi_values') }}

),

anchors as (

    select * from {{ ref('int_kpi_anchors') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

ytd_targets as (

    select * from {{ ref('int_kpi_ytd_targets') }}

),

targets as (

    select * from {{ ref('stg_catalog__targets') }}

),

withdrawals as (

    select kpi_id, min(point_date) as withdrawn_from
    from targets
    where point_type = 'withdrawn'
    group by kpi_id

),

baselines as (

    select kpi_id, anchor_date as baseline_date, anchor_value as baseline_value
    from anchors
    where anchor_type = 'baseline'

),

candidate_segments as (

    select
        kpi_values.kpi_id,
        kpi_values.period,
        anchors.anchor_type,
        anchors.anchor_date,
        anchors.anchor_value,
        anchors.next_anchor_date,
        anchors.next_anchor_value,
        row_number() over (
            partition by kpi_values.kpi_id, kpi_values.period
            order by anchors.anchor_seq
        ) as segment_rank
    from kpi_values
    inner join anchors
        on kpi_values.kpi_id = anchors.kpi_id
        and anchors.anchor_date <= kpi_values.period_end
        and (anchors.next_anchor_date >= kpi_values.period_end or anchors.next_anchor_date is null)

),

segments as (

    select
        kpi_id,
        period,
        anchor_type,
        anchor_date,
        anchor_value,
        next_anchor_date,
        next_anchor_value
    from candidate_segments
    where segment_rank = 1

),

expected as (

    select
        kpi_values.kpi_id,
        kpi_values.period,
        kpi_values.period_end,
        kpi_values.actual,
        kpi_values.numerator,
        kpi_values.denominator,
        kpi_values.latest_batch_id,
        kpis.direction,
        coalesce(kpis.tolerance, 0) as tolerance,
        kpis.tolerance_kind,
        coalesce(kpi_values.period >= withdrawals.withdrawn_from, false) as target_withdrawn,
        kpis.trajectory,
        baselines.baseline_value,
        baselines.baseline_date,
        case
            when kpis.targets_from = 'source' then kpi_values.period_target
            when ytd_targets.annual_target is not null then ytd_targets.annual_target
            when segments.next_anchor_date is not null then segments.next_anchor_value
            when segments.anchor_type = 'target' then segments.anchor_value
        end as target_value,
        case
            when kpis.targets_from = 'source' then
                case when kpi_values.period_target is not null then kpi_values.period_end end
            when ytd_targets.annual_target is not null then ytd_targets.annual_target_date
            when segments.next_anchor_date is not null then segments.next_anchor_date
            when segments.anchor_type = 'target' then segments.anchor_date
        end as target_date,
        case
            when kpis.targets_from = 'source'
                then kpi_values.period_target
            -- a year-to-date KPI: its share of the year's target so far (int_kpi_ytd_targets)
            when kpis.year_to_date = 'computed'
                then ytd_targets.ytd_expected
            -- past the last target: hold its value
            when segments.next_anchor_date is null and segments.anchor_type = 'target'
                then segments.anchor_value
            -- baseline only: no trajectory to follow
            when segments.next_anchor_date is null
                then null
            when kpis.trajectory = 'step'
                then case
                    when kpi_values.period_end >= segments.next_anchor_date
                        then segments.next_anchor_value
                    else segments.anchor_value
                end
            else segments.anchor_value
                + (segments.next_anchor_value - segments.anchor_value)
                * {{ kpiwatch.days_between('segments.anchor_date', 'kpi_values.period_end') }}
                / {{ kpiwatch.days_between('segments.anchor_date', 'segments.next_anchor_date') }}
        end as expected_value
    from kpi_values
    inner join kpis
        on kpi_values.kpi_id = kpis.kpi_id
    left join baselines
        on kpi_values.kpi_id = baselines.kpi_id
    left join segments
        on kpi_values.kpi_id = segments.kpi_id
        and kpi_values.period = segments.period
    left join ytd_targets
        on kpi_values.kpi_id = ytd_targets.kpi_id
        and kpi_values.period = ytd_targets.period
    left join withdrawals
        on kpi_values.kpi_id = withdrawals.kpi_id

),

final as (

    select
        kpi_id,
        period,
        period_end,
        actual,
        numerator,
        denominator,
        latest_batch_id,
        direction,
        tolerance,
        tolerance_kind,
        target_withdrawn,
        trajectory,
        baseline_value,
        baseline_date,
        case when not target_withdrawn then target_value end as target_value,
        case when not target_withdrawn then target_date end as target_date,
        cast(case when not target_withdrawn then expected_value end as double precision) as expected_value
    from expected

)

select * from final
