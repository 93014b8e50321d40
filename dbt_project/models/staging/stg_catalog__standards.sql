with

source as (

    select * from {{ source('catalog', 'standards') }}

),

final as (

    select
        cast(kpi_id as varchar) as kpi_id,
        cast(value as double precision) as standard_value,
        cast(effective_from as date) as effective_from
    from source

)

select * from final
