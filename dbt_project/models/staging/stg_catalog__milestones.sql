with

source as (

    select * from {{ source('catalog', 'milestones') }}

),

final as (

    select
        cast(milestone_id as varchar) as milestone_id,
        cast(title as varchar) as title,
        cast(department_id as varchar) as department_id,
        cast(kpi_id as varchar) as kpi_id,
        cast(threshold as double precision) as threshold,
        cast(due_date as date) as due_date,
        cast(owner_name as varchar) as owner_name,
        cast(owner_slack as varchar) as owner_slack,
        cast(completed_on as date) as completed_on,
        cast(coalesce(test, 'by_date') as varchar) as test,
        cast(from_date as date) as from_date,
        cast(completed_by as varchar) as completed_by
    from source

)

select * from final
