-- Rule: every KPI in fct_kpi_progress has exactly one is_latest row, and it is its latest
-- period. Why: alerts and the scorecard read only the latest row; zero or two would drop or
-- double-count a KPI.
with

progress as (

    select * from {{ ref('fct_kpi_progress') }}

),

final as (

    select
        kpi_id,
        count(*) filter (where is_latest) as latest_rows,
        max(period) as max_period,
        max(period) filter (where is_latest) as latest_period
    from progress
    group by kpi_id
    having count(*) filter (where is_latest) <> 1
        or max(period) filter (where is_latest) <> max(period)

)

select * from final
