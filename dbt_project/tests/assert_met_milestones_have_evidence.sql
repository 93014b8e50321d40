-- Rule: a met milestone has a met_period ending on or before its due date or a completed_on
-- on or before it; a missed one is past due. Why: "met" closes a public commitment, so it
-- must be backed by a value or a recorded completion in time.
with

milestones as (

    select * from {{ ref('fct_milestones') }}

),

catalog_milestones as (

    select * from {{ ref('stg_catalog__milestones') }}

),

final as (

    select milestones.milestone_id, milestones.state
    from milestones
    inner join catalog_milestones
        on milestones.milestone_id = catalog_milestones.milestone_id
    where (
        milestones.state = 'met'
        and milestones.met_period is null
        and not coalesce(catalog_milestones.completed_on <= milestones.due_date, false)
    )
    or (milestones.state = 'missed' and milestones.days_to_due >= 0)

)

select * from final
