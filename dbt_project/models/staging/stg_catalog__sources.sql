with

source as (

    select * from {{ source('catalog', 'sources') }}

),

final as (

    select
        cast(source_id as varchar) as source_id,
        cast(department_id as varchar) as department_id,
        cast(kind as varchar) as source_kind,
        cast(location as varchar) as location,
        cast(cadence as varchar) as cadence,
        cast(lag_days as integer) as lag_days
    from source

)

select * from final
