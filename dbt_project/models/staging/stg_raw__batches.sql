with

source as (

    select * from {{ source('raw', 'batches') }}

),

final as (

    select
        cast(batch_id as varchar) as batch_id,
        cast(source_id as varchar) as source_id,
        cast(department_id as varchar) as department_id,
        cast(source_file as varchar) as source_file,
        cast(source_sha256 as varchar) as source_sha256,
        cast(source_query as varchar) as source_query,
        cast(rows_in as integer) as rows_in,
        cast(rows_accepted as integer) as rows_accepted,
        cast(rows_quarantined as integer) as rows_quarantined,
        cast(loaded_at as timestamp) as loaded_at,
        cast(run_id as varchar) as run_id
    from source

)

select * from final
