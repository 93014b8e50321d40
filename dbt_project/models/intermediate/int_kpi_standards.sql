-- Each KPI x period judged against its standing standard (docs/kpi-model.md, "Standards").
-- The standard in effect for a period is the one with the latest effective_from on or before
-- the period's first day; periods starting before the first effective date are not judged.
--   standard_met: actual >= standard (higher_is_better) or actual <= standard
--     (lower_is_better), on the difference rounded to 9 decimals so that float noise from a
--     recomputed ratio (94.99999999999999 for an exact 95) does not turn a met into a miss.
--   periods_met_last_12 / periods_judged_last_12: over the KPI's last 12 judged periods
--     with a value, up to and including this one.
--   consecutive_misses: judged periods not met in a row, ending with this one (0 when met).
-- A standard is met or not met: there is no tolerance band around it.
-- A within_range KPI's standard is a band (band_lower, band_upper, inclusive): met inside it;
-- band_distance is how far outside it the value lies (0 inside), for the amber tolerance.

with

kpi_values as (

    select * from {{ ref('int_kpi_values') }}

),

standards as (

    select * from {{ ref('stg_catalog__standards') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

ranked_standards as (

    select
        kpi_values.kpi_id,
        kpi_values.period,
        kpi_values.actual,
        kpis.direction,
        standards.standard_value,
        standards.band_lower,
        standards.band_upper,
        standards.effective_from as standard_effective_from,
        row_number() over (
            partition by kpi_values.kpi_id, kpi_values.period
            order by standards.effective_from desc
        ) as standard_rank
    from kpi_values
    inner join kpis
        on kpi_values.kpi_id = kpis.kpi_id
    inner join standards
        on kpi_values.kpi_id = standards.kpi_id
        and standards.effective_from <= kpi_values.period

),

judged as (

    select
        kpi_id,
        period,
        standard_value,
        band_lower,
        band_upper,
        standard_effective_from,
        case
            when direction = 'within_range' then
                {{ kpiwatch.round_double('actual - band_lower', 9) }} >= 0
                and {{ kpiwatch.round_double('band_upper - actual', 9) }} >= 0
            else {{ kpiwatch.round_double(
                "case
                    when direction = 'lower_is_better' then standard_value - actual
                    else actual - standard_value
                end",
                9
            ) }} >= 0
        end as standard_met,
        case when direction = 'within_range' then
            greatest(
                {{ kpiwatch.round_double('band_lower - actual', 9) }},
                {{ kpiwatch.round_double('actual - band_upper', 9) }},
                cast(0 as double precision)
            )
        end as band_distance,
        row_number() over (partition by kpi_id order by period) as judged_seq
    from ranked_standards
    where standard_rank = 1
        and actual is not null

),

streaks as (

    select
        *,
        sum(case when standard_met then 1 else 0 end) over last_12 as periods_met_last_12,
        count(*) over last_12 as periods_judged_last_12,
        max(case when standard_met then judged_seq end) over (
            partition by kpi_id order by period rows between unbounded preceding and current row
        ) as last_met_seq
    from judged
    window last_12 as (
        partition by kpi_id order by period rows between 11 preceding and current row
    )

),

final as (

    select
        kpi_id,
        period,
        standard_value,
        band_lower,
        band_upper,
        band_distance,
        standard_effective_from,
        standard_met,
        cast(periods_met_last_12 as integer) as periods_met_last_12,
        cast(periods_judged_last_12 as integer) as periods_judged_last_12,
        cast(judged_seq - coalesce(last_met_seq, 0) as integer) as consecutive_misses
    from streaks

)

select * from final
