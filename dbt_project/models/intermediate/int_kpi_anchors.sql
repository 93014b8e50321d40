-- The trajectory anchors of each KPI: its baseline followed by its target points, sorted by
-- date, one anchor per date. For a date with several points, the one with the latest
-- effective_from not after as_of wins (a null effective_from counts as always effective;
-- points that take effect after as_of are ignored). Targets dated on or before the baseline
-- are dropped: the trajectory starts at the baseline, and a zero-length segment would divide
-- by zero.

with

targets as (

    select * from {{ ref('stg_catalog__targets') }}

),

settings as (

    select * from {{ ref('stg_catalog__settings') }}

),

effective_points as (

    select targets.*
    from targets
    cross join settings
    where coalesce(targets.effective_from, date '0001-01-01') <= settings.as_of_date

),

ranked_baselines as (

    select
        kpi_id,
        point_date as baseline_date,
        point_value as baseline_value,
        row_number() over (
            partition by kpi_id
            order by effective_from desc nulls last, point_date desc
        ) as point_rank
    from effective_points
    where point_type = 'baseline'

),

baselines as (

    select kpi_id, baseline_date, baseline_value
    from ranked_baselines
    where point_rank = 1

),

ranked_target_points as (

    select
        effective_points.kpi_id,
        effective_points.point_date,
        effective_points.point_value,
        row_number() over (
            partition by effective_points.kpi_id, effective_points.point_date
            order by effective_points.effective_from desc nulls last, effective_points.point_value
        ) as point_rank
    from effective_points
    inner join baselines
        on effective_points.kpi_id = baselines.kpi_id
    where effective_points.point_type = 'target'
        and effective_points.point_date > baselines.baseline_date

),

target_points as (

    select kpi_id, point_date, point_value
    from ranked_target_points
    where point_rank = 1

),

anchors as (

    select
        kpi_id,
        'baseline' as anchor_type,
        baseline_date as anchor_date,
        baseline_value as anchor_value
    from baselines

    union all

    select
        kpi_id,
        'target' as anchor_type,
        point_date as anchor_date,
        point_value as anchor_value
    from target_points

),

final as (

    select
        kpi_id,
        cast(row_number() over (partition by kpi_id order by anchor_date) - 1 as integer)
            as anchor_seq,
        anchor_type,
        anchor_date,
        anchor_value,
        lead(anchor_date) over (partition by kpi_id order by anchor_date) as next_anchor_date,
        lead(anchor_value) over (partition by kpi_id order by anchor_date) as next_anchor_value
    from anchors

)

select * from final
