with

source as (

    select * from {{ source('catalog', 'kpis') }}

),

final as (

    select
        cast(kpi_id as varchar) as kpi_id,
        cast(name as varchar) as kpi_name,
        cast(department_id as varchar) as department_id,
        cast(source_id as varchar) as source_id,
        cast(owner_name as varchar) as owner_name,
        cast(owner_slack as varchar) as owner_slack,
        cast(unit as varchar) as unit,
        cast(direction as varchar) as direction,
        cast(frequency as varchar) as frequency,
        cast(aggregation as varchar) as aggregation,
        cast(scale as double precision) as scale,
        cast(tolerance as double precision) as tolerance,
        cast(trajectory as varchar) as trajectory,
        cast(methodology as varchar) as methodology,
        cast(tags as varchar) as tags,
        cast(coalesce(targets_from, 'catalog') as varchar) as targets_from,
        cast(coalesce(fiscal_start_month, 1) as integer) as fiscal_start_month,
        cast(year_to_date as varchar) as year_to_date,
        -- the organisation's own code, shown beside the id (CS01); the id when not given
        cast(coalesce(code, kpi_id) as varchar) as kpi_code,
        -- 'amount': tolerance is a distance in the KPI's unit; 'share': a fraction of the
        -- target or standard it is judged against (10% -> 0.10)
        cast(coalesce(tolerance_kind, 'amount') as varchar) as tolerance_kind,
        -- decimals values and targets are shown with (null: the display's default)
        cast(decimals as integer) as decimals
    from source

)

select * from final
