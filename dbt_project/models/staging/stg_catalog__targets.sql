with

source as (

    select * from {{ source('catalog', 'targets') }}

),

final as (

    select
        cast(kpi_id as varchar) as kpi_id,
        cast(point_type as varchar) as point_type,
        cast(value as double precision) as point_value,
        cast(point_date as date) as point_date,
        cast(effective_from as date) as effective_from
    from source

)

select * from final
