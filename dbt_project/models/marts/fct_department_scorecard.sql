-- One row per catalog department, including departments with no KPI data (zeros).
-- Status counts use each KPI's latest period; a catalog KPI with no actual at all counts as
-- grey, so green + amber + red + grey = kpis. untrusted counts KPIs whose latest value is
-- not trusted (stale or failed_checks). source_overdue: any of the department's sources is
-- overdue (a shared source, without a department, is the source of each department it feeds).

with

departments as (

    select * from {{ ref('stg_catalog__departments') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

progress as (

    select * from {{ ref('fct_kpi_progress') }}

),

milestones as (

    select * from {{ ref('fct_milestones') }}

),

freshness as (

    select * from {{ ref('fct_source_freshness') }}

),

kpi_counts as (

    select
        kpis.department_id,
        count(*) as kpis,
        count(*) filter (where progress.status = 'green') as green,
        count(*) filter (where progress.status = 'amber') as amber,
        count(*) filter (where progress.status = 'red') as red,
        count(*) filter (where coalesce(progress.status, 'grey') = 'grey') as grey,
        count(*) filter (where progress.data_trust <> 'trusted') as untrusted
    from kpis
    left join progress
        on kpis.kpi_id = progress.kpi_id
        and progress.is_latest
    group by kpis.department_id

),

milestone_counts as (

    select
        department_id,
        count(*) filter (where state = 'met') as milestones_met,
        count(*) filter (where state = 'missed') as milestones_missed,
        count(*) filter (where state = 'no_data') as milestones_no_data,
        count(*) filter (where state = 'at_risk') as milestones_at_risk,
        count(*) filter (where state = 'upcoming') as milestones_upcoming
    from milestones
    group by department_id

),

-- a shared source (no department) counts for every department whose KPIs it feeds
overdue as (

    select
        coalesce(freshness.department_id, shared_kpis.department_id) as department_id,
        bool_or(freshness.is_overdue) as source_overdue
    from freshness
    left join kpis as shared_kpis
        on freshness.department_id is null
        and shared_kpis.source_id = freshness.source_id
    group by coalesce(freshness.department_id, shared_kpis.department_id)

),

final as (

    select
        departments.department_id,
        departments.department_name,
        cast(coalesce(kpi_counts.kpis, 0) as integer) as kpis,
        cast(coalesce(kpi_counts.green, 0) as integer) as green,
        cast(coalesce(kpi_counts.amber, 0) as integer) as amber,
        cast(coalesce(kpi_counts.red, 0) as integer) as red,
        cast(coalesce(kpi_counts.grey, 0) as integer) as grey,
        cast(coalesce(kpi_counts.untrusted, 0) as integer) as untrusted,
        cast(coalesce(milestone_counts.milestones_met, 0) as integer) as milestones_met,
        cast(coalesce(milestone_counts.milestones_missed, 0) as integer) as milestones_missed,
        cast(coalesce(milestone_counts.milestones_no_data, 0) as integer) as milestones_no_data,
        cast(coalesce(milestone_counts.milestones_at_risk, 0) as integer) as milestones_at_risk,
        cast(coalesce(milestone_counts.milestones_upcoming, 0) as integer)
            as milestones_upcoming,
        coalesce(overdue.source_overdue, false) as source_overdue
    from departments
    left join kpi_counts
        on departments.department_id = kpi_counts.department_id
    left join milestone_counts
        on departments.department_id = milestone_counts.department_id
    left join overdue
        on departments.department_id = overdue.department_id

)

select * from final
