-- Organisations against the standard (docs/kpi-model.md, "Organisations against the
-- standard"): per KPI with a standard and per period, how many organisations were judged
-- (had a value), how many met the standard, and how many did not. Which did not, worst first,
-- is read from fct_kpi_org_values (kpiwatch status --by-org, the scorecard).

with

org_values as (

    select * from {{ ref('fct_kpi_org_values') }}

),

final as (

    select
        kpi_id,
        period,
        max(standard_value) as standard_value,
        max(band_lower) as band_lower,
        max(band_upper) as band_upper,
        cast(count(*) filter (where standard_met is not null) as integer) as orgs_judged,
        cast(count(*) filter (where standard_met) as integer) as orgs_met,
        cast(count(*) filter (where not standard_met) as integer) as orgs_not_met
    from org_values
    where standard_value is not null or band_lower is not null
    group by kpi_id, period

)

select * from final
