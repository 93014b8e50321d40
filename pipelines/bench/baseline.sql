-- kpiwatch's yardstick: the benchmark estate's landing, row checks and marts in one
-- hand-written DuckDB script, as a data engineer would write it without a framework.
-- It runs from the estate directory (`kpiwatch bench generate` writes data/, baseline/) on
-- its own DuckDB file, and is re-runnable: a second run lands only files not seen before
-- (by sha256), then recomputes the marts. pipelines/bench/run.py times it beside kpiwatch,
-- and tests/bench/test_bench.py checks that both compute the same figures row for row.
--
-- It follows kpiwatch's documented rules (docs/kpi-model.md, docs/quality.md) for the formats
-- the generator writes: monthly periods as 'YYYY-MM', measures as numbers or text, one source
-- per department. It knows nothing of kpiwatch's code.

create schema if not exists raw;
create schema if not exists marts;
create schema if not exists checks;

-- ---- catalog (flat copies written by the generator) --------------------------------------
create or replace table kpis as
select * from read_csv('baseline/kpis.csv', header = true,
    columns = {'kpi_id': 'varchar', 'department_id': 'varchar', 'source_id': 'varchar', 'aggregation': 'varchar',
               'scale': 'double', 'direction': 'varchar', 'tolerance': 'double', 'frequency': 'varchar'});
create or replace table anchor_points as
select * from read_csv('baseline/anchors.csv', header = true,
    columns = {'kpi_id': 'varchar', 'anchor_type': 'varchar', 'anchor_date': 'date', 'anchor_value': 'double'});

create table if not exists raw.batches (
    batch_id varchar primary key, source_id varchar, department_id varchar, source_file varchar,
    source_sha256 varchar, rows_in bigint, rows_accepted bigint, rows_quarantined bigint, loaded_at timestamp);
create table if not exists raw.observations (
    batch_id varchar, source_id varchar, department_id varchar, kpi_id varchar, org_id varchar, period date,
    value double, numerator double, denominator double, source_file varchar, loaded_at timestamp);
create table if not exists raw.quarantine (
    batch_id varchar, source_id varchar, department_id varchar, reason varchar, kpi_code varchar, org varchar,
    month varchar, loaded_at timestamp);

-- ---- ingest: new files only (a file's sha256 identifies its batch) -----------------------
create or replace temp table new_files as
with files as (
    select filename as source_file, sha256(content) as sha,
           regexp_extract(filename, 'data/([^/]+)/', 1) as department_id
    from read_blob('data/*/*.*')
    where filename like '%.csv' or filename like '%.parquet'
)
select source_file, sha, department_id, department_id || '_returns' as source_id,
       department_id || '_returns:' || left(sha, 16) as batch_id,
       -- new files of a run a microsecond apart in name order (the later file is the later revision)
       current_localtimestamp() + to_microseconds(
           (row_number() over (partition by department_id order by source_file) - 1)::bigint) as loaded_at
from files
where sha not in (select source_sha256 from raw.batches);

-- Every input row as text, whatever the file type.
create or replace temp table input as
select f.batch_id, f.source_id, f.department_id, f.source_file, f.loaded_at, r.kpi_code, r.month, r.org,
       r.value, r.numerator, r.denominator
from (
    select filename, kpi_code, month, org, value, numerator, denominator
    from read_csv('data/*/*.csv', header = true, all_varchar = true, filename = true)
    union all
    select filename, kpi_code, month, org, cast(value as varchar), cast(numerator as varchar),
           cast(denominator as varchar)
    from read_parquet('data/*/*.parquet', filename = true)
) r
inner join new_files f on r.filename = f.source_file;

-- Parse: text -> typed, or the reason it cannot be (missing markers are missing values,
-- never zeros). The first failing field names the reason, in field order.
create or replace temp table parsed as
with typed as (
    select
        *,
        nullif(trim(kpi_code), '') as kpi_id,
        coalesce(nullif(trim(org), ''), 'ALL') as org_id,
        try_strptime(trim(month) || '-01', '%Y-%m-%d')::date as period,
        try_cast(trim(value) as double) as value_n,
        try_cast(trim(numerator) as double) as numerator_n,
        try_cast(trim(denominator) as double) as denominator_n
    from input
),
judged as (
    select
        typed.*,
        kpis.aggregation,
        case
            when nullif(trim(month), '') is not null and period is null then 'unparseable_period'
            when trim(value) in ('-', 'N/A', 'n/a', 'NA', '..', '...', '*', ':', 'x', 'X', 'NULL', 'null')
                or trim(numerator) in ('-', 'N/A', 'n/a', 'NA', '..', '...', '*', ':', 'x', 'X', 'NULL', 'null')
                or trim(denominator) in ('-', 'N/A', 'n/a', 'NA', '..', '...', '*', ':', 'x', 'X', 'NULL', 'null')
                then 'missing_value'
            when (nullif(trim(value), '') is not null and value_n is null)
                or (nullif(trim(numerator), '') is not null and numerator_n is null)
                or (nullif(trim(denominator), '') is not null and denominator_n is null)
                or isinf(coalesce(value_n, 0)) or isnan(coalesce(value_n, 0))
                then 'unparseable_number'
            when kpis.aggregation = 'ratio' and (numerator_n is null or denominator_n is null) then 'missing_value'
            when kpis.aggregation <> 'ratio' and value_n is null then 'missing_value'
        end as parse_reason
    from typed
    left join kpis
        on typed.kpi_id = kpis.kpi_id
        and typed.department_id = kpis.department_id
)
select * from judged;

-- ---- validation: row checks, landing and batch checks ----------------------------------
-- Row checks on the parsed rows, in the contract's order; the first failure is the reason.
-- The natural key must be unique within a batch: every row of a repeated key is rejected.
create or replace temp table checked as
select
    *,
    case
        when kpi_id is null then 'missing_kpi_id'
        when period is null then 'missing_period'
        when aggregation is null then 'unknown_kpi_id'
        when value_n < 0 or numerator_n < 0 or denominator_n < 0 then 'negative_value'
        when period > date '2026-11-15' then 'period_in_future'
        when count(*) over (partition by batch_id, kpi_id, org_id, period) > 1 then 'duplicate_key'
    end as check_reason
from parsed
where parse_reason is null;

insert into raw.quarantine
select batch_id, source_id, department_id, parse_reason, kpi_code, org, month, loaded_at
from parsed where parse_reason is not null
union all
select batch_id, source_id, department_id, check_reason, kpi_code, org, month, loaded_at
from checked where check_reason is not null;

insert into raw.observations
select batch_id, source_id, department_id, kpi_id, org_id, period, value_n, numerator_n, denominator_n,
       source_file, loaded_at
from checked where check_reason is null;

insert into raw.batches
select f.batch_id, f.source_id, f.department_id, f.source_file, f.sha,
       coalesce(i.n, 0), coalesce(o.n, 0), coalesce(q.n, 0), f.loaded_at
from new_files f
left join (select batch_id, count(*) n from input group by all) i using (batch_id)
left join (select batch_id, count(*) n from checked where check_reason is null group by all) o using (batch_id)
left join (select batch_id, count(*) n from (select batch_id from parsed where parse_reason is not null
                                             union all select batch_id from checked where check_reason is not null)
           group by all) q using (batch_id);

-- Batch checks: every row accounted for; at most 25% of a batch rejected.
create or replace table checks.batches as
select batch_id, source_id, rows_in, rows_accepted, rows_quarantined,
       rows_in = rows_accepted + rows_quarantined as rows_accounted,
       rows_quarantined <= 0.25 * rows_in as rejection_rate_ok
from raw.batches;

-- ---- marts -------------------------------------------------------------------------------
-- The latest revision of each KPI x organisation x period wins (latest load, then batch id).
create or replace temp table latest as
select *
from raw.observations
qualify row_number() over (partition by kpi_id, org_id, period order by loaded_at desc, batch_id desc) = 1;

-- One value per KPI x period: sums, means, and ratios recomputed from summed parts.
create or replace table marts.kpi_values as
with per_period as (
    select l.kpi_id, l.period, k.aggregation, coalesce(k.scale, 1) as scale, count(*) as org_count,
           sum(l.value) as sum_value, avg(l.value) as mean_value,
           sum(l.numerator) as numerator, sum(l.denominator) as denominator,
           count(l.numerator) as numerator_count, count(l.denominator) as denominator_count
    from latest l join kpis k using (kpi_id)
    group by all
)
select kpi_id, period, last_day(period) as period_end,
       case aggregation
           when 'sum' then sum_value
           when 'mean' then mean_value
           when 'ratio' then case
               when numerator_count = org_count and denominator_count = org_count
                   then scale * numerator / nullif(denominator, 0)
               when org_count = 1 then sum_value end
       end as actual,
       numerator, denominator, org_count
from per_period
where actual is not null;

-- Trajectory: linear between the baseline and each target; the last target's value after it.
create or replace temp table anchors as
select kpi_id, anchor_type, anchor_date, anchor_value,
       row_number() over (partition by kpi_id order by anchor_date) as seq,
       lead(anchor_date) over (partition by kpi_id order by anchor_date) as next_date,
       lead(anchor_value) over (partition by kpi_id order by anchor_date) as next_value
from anchor_points;

create or replace table marts.kpi_progress as
with segment as (
    select v.*, a.anchor_type, a.anchor_date, a.anchor_value, a.next_date, a.next_value
    from marts.kpi_values v
    left join anchors a
        on v.kpi_id = a.kpi_id and a.anchor_date <= v.period_end and (a.next_date >= v.period_end or a.next_date is null)
    qualify row_number() over (partition by v.kpi_id, v.period order by a.seq) = 1
),
expected as (
    select s.*, k.direction, k.tolerance,
           case
               when s.next_date is null and s.anchor_type = 'target' then s.anchor_value
               when s.next_date is null then null
               else s.anchor_value + (s.next_value - s.anchor_value)
                   * date_diff('day', s.anchor_date, s.period_end) / date_diff('day', s.anchor_date, s.next_date)
           end::double as expected_value
    from segment s join kpis k using (kpi_id)
),
gaps as (
    select *, round(case when direction = 'lower_is_better' then expected_value - actual
                         else actual - expected_value end, 9) as performance_gap
    from expected
),
statuses as (
    select *, case when performance_gap is null then 'grey' when performance_gap >= 0 then 'green'
                   when performance_gap >= -tolerance then 'amber' else 'red' end as status
    from gaps
)
select kpi_id, period, period_end, actual, numerator, denominator, expected_value, performance_gap, status,
       lag(status) over (partition by kpi_id order by period) as previous_status,
       row_number() over (partition by kpi_id order by period desc) = 1 as is_latest
from statuses;

-- Each KPI per organisation and period beside the KPI's expected value.
create or replace table marts.kpi_org_values as
with per_org as (
    select l.kpi_id, split_part(l.org_id, '|', 1) as org_id, l.period, k.aggregation, coalesce(k.scale, 1) as scale,
           sum(l.value) as sum_value, avg(l.value) as mean_value, sum(l.numerator) as numerator,
           sum(l.denominator) as denominator, count(*) as rows_combined
    from latest l join kpis k using (kpi_id)
    group by all
),
valued as (
    select *, case aggregation when 'sum' then sum_value when 'mean' then mean_value
                               when 'ratio' then scale * numerator / nullif(denominator, 0) end as actual
    from per_org
)
select v.kpi_id, v.org_id, v.period, v.actual, v.numerator, v.denominator, v.rows_combined, p.expected_value,
       round(case k.direction when 'lower_is_better' then p.expected_value - v.actual
                              else v.actual - p.expected_value end, 9) as performance_gap,
       case
           when v.actual is null or p.expected_value is null then 'grey'
           when round(case k.direction when 'lower_is_better' then p.expected_value - v.actual
                                       else v.actual - p.expected_value end, 9) >= 0 then 'green'
           when round(case k.direction when 'lower_is_better' then p.expected_value - v.actual
                                       else v.actual - p.expected_value end, 9) >= -k.tolerance then 'amber'
           else 'red'
       end as status
from valued v
join kpis k using (kpi_id)
left join marts.kpi_progress p on v.kpi_id = p.kpi_id and v.period = p.period;

-- ---- checks after the marts (drift and freshness) --------------------------------------------
-- Freshness: a monthly source is overdue when its latest period is before the last month due
-- (the period's end plus 14 days of lag, plus 7 days of grace, before the reporting date).
create or replace table checks.source_freshness as
select source_id, max(period) as latest_period,
       date_trunc('month', date '2026-11-15' - interval 21 day - interval 1 month)::date as expected_period,
       max(period) < expected_period as overdue
from raw.observations
group by source_id;

-- KPI values against their own history: robust z (median and MAD of the earlier periods).
create or replace table checks.kpi_outliers as
with history as (
    select p.kpi_id, p.period, p.actual,
           (select median(h.actual) from marts.kpi_progress h where h.kpi_id = p.kpi_id and h.period < p.period) as centre
    from marts.kpi_progress p
    where p.is_latest
),
spread as (
    select h.kpi_id, h.period, h.actual, h.centre,
           (select 1.4826 * median(abs(x.actual - h.centre)) from marts.kpi_progress x
            where x.kpi_id = h.kpi_id and x.period < h.period) as mad
    from history h
)
select kpi_id, period, actual, centre, mad, abs(actual - centre) / nullif(mad, 0) as robust_z,
       abs(actual - centre) / nullif(mad, 0) > 6 as outlier
from spread;

-- Source volume: organisations per KPI and period against the source's median.
create or replace table checks.source_volume as
with per_period as (
    select source_id, kpi_id, period, count(distinct org_id) as orgs from raw.observations group by all
)
select source_id, kpi_id, period, orgs, median(orgs) over (partition by source_id, kpi_id) as typical,
       orgs < 0.5 * typical as low
from per_period;
