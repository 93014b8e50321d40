-- Rule: a ratio KPI's actual equals scale * numerator / denominator of its summed parts.
-- Why: ratios must be recomputed, never averaged across organisations (docs/kpi-model.md);
-- an average of ratios weights a small organisation like a large one.
with

progress as (

    select * from {{ ref('fct_kpi_progress') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

final as (

    select progress.kpi_id, progress.period, progress.actual, progress.numerator, progress.denominator
    from progress
    inner join kpis
        on progress.kpi_id = kpis.kpi_id
    where kpis.aggregation = 'ratio'
        and progress.denominator is not null
        and abs(
            progress.actual - coalesce(kpis.scale, 1) * progress.numerator / progress.denominator
        ) > 1e-9 * greatest(abs(progress.actual), 1)

)

select * from final
