with

source as (

    select * from {{ source('catalog', 'standards') }}

),

final as (

    select
        cast(kpi_id as varchar) as kpi_id,
        cast(value as double precision) as standard_value,
        cast(effective_from as date) as effective_from,
        cast(lower_value as double precision) as band_lower,
        cast(upper_value as double precision) as band_upper
    from source

)

select * from final
