-- Rule: in every department row, green + amber + red + grey = kpis, and untrusted <= kpis.
-- Why: the scorecard is read as "n of m KPIs"; a KPI counted twice or lost (e.g. two latest
-- rows, or a KPI with no data) would misstate a department's standing.
with

scorecard as (

    select * from {{ ref('fct_department_scorecard') }}

),

final as (

    select *
    from scorecard
    where green + amber + red + grey <> kpis
        or untrusted > kpis

)

select * from final
