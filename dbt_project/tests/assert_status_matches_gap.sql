-- Rule: status agrees with performance_gap and the KPI's tolerance (in its unit: a share of
-- the target for tolerance_kind share, tolerance_amount): green has gap >= 0,
-- amber has -tolerance <= gap < 0, red has gap < -tolerance, grey has no expected value.
-- Why: status is what owners are alerted on; a row whose colour contradicts its own numbers
-- would page the wrong people (or nobody).
with

progress as (

    select * from {{ ref('fct_kpi_progress') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

final as (

    select progress.kpi_id, progress.period, progress.status, progress.performance_gap
    from progress
    inner join kpis
        on progress.kpi_id = kpis.kpi_id
    where not case progress.status
        when 'green' then progress.performance_gap >= 0
        when 'amber' then progress.performance_gap < 0
            and progress.performance_gap >= -coalesce(progress.tolerance_amount, kpis.tolerance, 0)
        when 'red' then progress.performance_gap < -coalesce(progress.tolerance_amount, kpis.tolerance, 0)
        when 'grey' then progress.expected_value is null
        else false
    end

)

select * from final
