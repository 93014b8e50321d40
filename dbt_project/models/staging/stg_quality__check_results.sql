with

source as (

    select * from {{ source('quality', 'check_results') }}

),

final as (

    select
        cast(run_id as varchar) as run_id,
        cast(batch_id as varchar) as batch_id,
        cast(source_id as varchar) as source_id,
        cast(department_id as varchar) as department_id,
        cast(suite as varchar) as suite,
        cast(check_name as varchar) as check_name,
        cast(expectation_type as varchar) as expectation_type,
        cast(column_name as varchar) as column_name,
        cast(severity as varchar) as severity,
        cast(success as boolean) as success,
        cast(observed as varchar) as observed,
        cast(expected as varchar) as expected,
        cast(unexpected_count as bigint) as unexpected_count,
        cast(checked_at as timestamp) as checked_at
    from source

)

select * from final
