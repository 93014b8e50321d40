with

source as (

    select * from {{ source('catalog', 'departments') }}

),

final as (

    select
        cast(department_id as varchar) as department_id,
        cast(name as varchar) as department_name,
        cast(channel as varchar) as channel,
        cast(head_name as varchar) as head_name,
        cast(head_slack as varchar) as head_slack
    from source

)

select * from final
