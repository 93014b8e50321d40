with

source as (

    select * from {{ source('raw', 'observations') }}

),

final as (

    select
        cast(batch_id as varchar) as batch_id,
        cast(source_id as varchar) as source_id,
        cast(department_id as varchar) as department_id,
        cast(kpi_id as varchar) as kpi_id,
        cast(coalesce(org_id, 'ALL') as varchar) as org_id,
        cast(period as date) as period,
        cast(value as double precision) as value,
        cast(numerator as double precision) as numerator,
        cast(denominator as double precision) as denominator,
        cast(target as double precision) as target,
        cast(source_file as varchar) as source_file,
        cast(source_sha256 as varchar) as source_sha256,
        cast(source_query as varchar) as source_query,
        cast(row_number as integer) as row_number,
        cast(loaded_at as timestamp) as loaded_at
    from source

)

select * from final
