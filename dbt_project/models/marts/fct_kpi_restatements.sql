-- Restatements: every time a resubmission changed an already landed figure. One row per
-- (KPI, organisation, period) revision whose value differs from the revision before it, with
-- the old and new values, the change, and the batches involved. The marts use the latest
-- revision (int_observations__latest_revision); the history stays in raw.observations.

with

observations as (

    select * from {{ ref('stg_raw__observations') }}

),

sequenced as (

    select
        kpi_id,
        org_id,
        period,
        value,
        numerator,
        denominator,
        batch_id,
        source_file,
        loaded_at,
        lag(value) over revisions as previous_value,
        lag(numerator) over revisions as previous_numerator,
        lag(denominator) over revisions as previous_denominator,
        lag(batch_id) over revisions as previous_batch_id,
        lag(source_file) over revisions as previous_source_file,
        lag(loaded_at) over revisions as previous_loaded_at
    from observations
    window revisions as (
        partition by kpi_id, org_id, period
        order by loaded_at, {{ kpiwatch.bytewise('batch_id') }}
    )

),

final as (

    select
        kpi_id,
        org_id,
        period,
        previous_value,
        value as revised_value,
        value - previous_value as value_change,
        previous_numerator,
        numerator as revised_numerator,
        previous_denominator,
        denominator as revised_denominator,
        previous_batch_id,
        batch_id as revising_batch_id,
        previous_source_file,
        source_file as revising_source_file,
        loaded_at as revised_at
    from sequenced
    where previous_batch_id is not null
        and (
            value is distinct from previous_value
            or numerator is distinct from previous_numerator
            or denominator is distinct from previous_denominator
        )

)

select * from final
