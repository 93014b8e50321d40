-- One row per (kpi_id, org_id, period): the row from the latest batch wins, because a
-- resubmission is a revision. Latest = max loaded_at, then max batch_id (ties on the load
-- instant), then the last data row of that batch (a defensive tie-break: ingest quarantines
-- duplicate keys within a batch).

with

observations as (

    select * from {{ ref('stg_raw__observations') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by kpi_id, org_id, period
            order by loaded_at desc, batch_id desc, row_number desc
        ) as revision_rank,
        count(*) over (partition by kpi_id, org_id, period) as revisions
    from observations

),

final as (

    select
        kpi_id,
        org_id,
        period,
        source_id,
        department_id,
        value,
        numerator,
        denominator,
        target,
        batch_id,
        loaded_at,
        revisions
    from ranked
    where revision_rank = 1

)

select * from final
