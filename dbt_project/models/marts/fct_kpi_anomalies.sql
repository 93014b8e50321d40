-- Sudden jumps (docs/kpi-model.md, "Sudden jumps"): each KPI x period's change from the
-- previous period with an actual, compared with the KPI's own previous (up to 24) changes:
--   robust_z = 0.6745 * (change - median_change) / mad_change
--   is_anomaly = at least 12 previous changes and |robust_z| > 6
-- Changes rather than levels, so a steady trend is not flagged; median/MAD so that outliers
-- in the history do not widen the band.
--
-- MAD = 0 happens whenever more than half the previous changes are equal, which is common
-- for whole-number KPIs (changes of +2, +1, +2, +2, +1, ...), not only for perfectly steady
-- ones. Dividing by it is impossible, and flooring it at a tiny value would flag an ordinary
-- +1 among mostly +2s. So, when MAD = 0, robust_z falls back to the mean absolute deviation
-- from the median (the usual modified z-score fallback: (change - median) / (1.253314 *
-- MeanAD), written below as 0.6745 * (change - median) / (0.6745 * 1.253314 * MeanAD)).
-- When that is 0 too (every previous change identical), the spread is floored at 0.1% of
-- the KPI's median absolute level over the same history (1e-9 if that level is 0): against
-- a perfectly steady history, a change that departs from it by more than
-- 6 / 0.6745 * 0.1% ~= 0.9% of the KPI's level is a jump. Changes are rounded to 9
-- decimals so float noise (0.1 + 0.2) does not make a steady history look spread.
-- mad_change reports the plain MAD. robust_z is null only when there is no previous change.

with

kpi_values as (

    select * from {{ ref('int_kpi_values') }}

),

kpis as (

    select * from {{ ref('stg_catalog__kpis') }}

),

changes as (

    select
        kpi_id,
        period,
        actual,
        {{ kpiwatch.round_double(
            'actual - lag(actual) over (partition by kpi_id order by period)', 9
        ) }} as change,
        row_number() over (partition by kpi_id order by period) as seq,
        row_number() over (partition by kpi_id order by period desc) = 1 as is_latest
    from kpi_values

),

history as (

    select
        current_period.kpi_id,
        current_period.period,
        previous.change as previous_change,
        previous.actual as previous_actual
    from changes as current_period
    inner join changes as previous
        on current_period.kpi_id = previous.kpi_id
        and previous.seq between current_period.seq - 24 and current_period.seq - 1
        and previous.change is not null

),

centres as (

    select
        kpi_id,
        period,
        count(*) as previous_changes,
        {{ kpiwatch.median('previous_change') }} as median_change,
        {{ kpiwatch.median('abs(previous_actual)') }} as median_abs_level
    from history
    group by kpi_id, period

),

spreads as (

    select
        centres.kpi_id,
        centres.period,
        {{ kpiwatch.median('abs(history.previous_change - centres.median_change)') }} as mad_change,
        avg(abs(history.previous_change - centres.median_change)) as mean_abs_deviation
    from centres
    inner join history
        on centres.kpi_id = history.kpi_id
        and centres.period = history.period
    group by centres.kpi_id, centres.period

),

scored as (

    select
        changes.kpi_id,
        changes.period,
        changes.actual,
        changes.change,
        coalesce(centres.previous_changes, 0) as previous_changes,
        centres.median_change,
        spreads.mad_change,
        {{ kpiwatch.round_double(
            "0.6745 * (changes.change - centres.median_change)
            / case
                when spreads.mad_change > 0 then spreads.mad_change
                when spreads.mean_abs_deviation > 0 then 0.6745 * 1.253314 * spreads.mean_abs_deviation
                else greatest(0.001 * centres.median_abs_level, cast(1e-9 as double precision))
            end",
            6
        ) }} as robust_z,
        changes.is_latest
    from changes
    left join centres
        on changes.kpi_id = centres.kpi_id
        and changes.period = centres.period
    left join spreads
        on changes.kpi_id = spreads.kpi_id
        and changes.period = spreads.period

),

final as (

    select
        scored.kpi_id,
        kpis.department_id,
        scored.period,
        scored.actual,
        scored.change,
        scored.median_change,
        scored.mad_change,
        scored.robust_z,
        coalesce(scored.previous_changes >= 12 and abs(scored.robust_z) > 6, false) as is_anomaly,
        scored.is_latest
    from scored
    inner join kpis
        on scored.kpi_id = kpis.kpi_id

)

select * from final
