{#-
    SQL that DuckDB and PostgreSQL spell differently. Each macro dispatches on the adapter:
    the duckdb__ version is the DuckDB SQL the models always used (so DuckDB results do not
    change), default__ is PostgreSQL's, written to give the same values, types and NULL
    handling. Arguments are SQL expressions (strings), e.g.
    {{ kpiwatch.days_between('anchor_date', 'period_end') }}.

    dbt's own cross-database macros are not used for these: dbt.datediff on Postgres returns
    double precision for months (date_part), dbt.last_day goes through timestamps with time
    zone, and there is no median / arg_min / ordered first().
-#}


{#- Whole days from start_date to end_date (dates; negative when end is earlier). -#}
{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between', 'kpiwatch')(start_date, end_date)) }}
{%- endmacro %}

{% macro duckdb__days_between(start_date, end_date) -%}
    date_diff('day', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{% macro default__days_between(start_date, end_date) -%}
    (cast({{ end_date }} as date) - cast({{ start_date }} as date))
{%- endmacro %}


{#- Month boundaries crossed from start_date to end_date (DuckDB's date_diff('month', ...):
    2026-01-31 -> 2026-02-01 is 1), as an integer. -#}
{% macro months_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('months_between', 'kpiwatch')(start_date, end_date)) }}
{%- endmacro %}

{% macro duckdb__months_between(start_date, end_date) -%}
    date_diff('month', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{% macro default__months_between(start_date, end_date) -%}
    cast(
        (extract(year from {{ end_date }}) - extract(year from {{ start_date }})) * 12
        + extract(month from {{ end_date }}) - extract(month from {{ start_date }})
        as integer
    )
{%- endmacro %}


{#- Integer division of two integers, truncated towards zero (DuckDB's `/` gives a double). -#}
{% macro integer_divide(dividend, divisor) -%}
    {{ return(adapter.dispatch('integer_divide', 'kpiwatch')(dividend, divisor)) }}
{%- endmacro %}

{% macro duckdb__integer_divide(dividend, divisor) -%}
    ({{ dividend }}) // ({{ divisor }})
{%- endmacro %}

{% macro default__integer_divide(dividend, divisor) -%}
    (cast({{ dividend }} as bigint) / cast({{ divisor }} as bigint))
{%- endmacro %}


{#- Last day (a date) of the month `months_ahead` months after the month of date_expr. -#}
{% macro month_end(date_expr, months_ahead=0) -%}
    {{ return(adapter.dispatch('month_end', 'kpiwatch')(date_expr, months_ahead)) }}
{%- endmacro %}

{% macro duckdb__month_end(date_expr, months_ahead=0) -%}
    {%- if months_ahead == 0 -%}
    last_day({{ date_expr }})
    {%- else -%}
    last_day({{ date_expr }} + interval {{ months_ahead }} month)
    {%- endif -%}
{%- endmacro %}

{% macro default__month_end(date_expr, months_ahead=0) -%}
    cast(
        date_trunc('month', cast({{ date_expr }} as timestamp))
        + interval '{{ months_ahead + 1 }} month' - interval '1 day'
        as date
    )
{%- endmacro %}


{#- 'YYYY-MM' of a date (null stays null). -#}
{% macro year_month(date_expr) -%}
    {{ return(adapter.dispatch('year_month', 'kpiwatch')(date_expr)) }}
{%- endmacro %}

{% macro duckdb__year_month(date_expr) -%}
    strftime({{ date_expr }}, '%Y-%m')
{%- endmacro %}

{% macro default__year_month(date_expr) -%}
    to_char({{ date_expr }}, 'YYYY-MM')
{%- endmacro %}


{#- Round a double to `digits` decimals, as a double. DuckDB computes
    round(x * 10^digits) / 10^digits in double arithmetic, halves away from zero; Postgres has
    no round(double precision, int), and going through numeric would keep only 15 significant
    digits, so the same arithmetic is written out (repeating the expression). -#}
{% macro round_double(expr, digits) -%}
    {{ return(adapter.dispatch('round_double', 'kpiwatch')(expr, digits)) }}
{%- endmacro %}

{% macro duckdb__round_double(expr, digits) -%}
    round({{ expr }}, {{ digits }})
{%- endmacro %}

{% macro default__round_double(expr, digits) -%}
    {%- set scale = "cast(1e" ~ digits ~ " as double precision)" -%}
    (sign(({{ expr }}) * {{ scale }}) * floor(abs(({{ expr }}) * {{ scale }}) + 0.5) / {{ scale }})
{%- endmacro %}


{#- Median, nulls ignored; for an even count the mean of the two middle values. DuckDB computes
    that as (lower + upper) / 2, Postgres's percentile_cont(0.5) as lower + 0.5 * (upper -
    lower), which differs in the last bit about a third of the time; the two middle values
    (the same one for an odd count) are taken with percentile_disc instead, so that both
    engines return the same double. -#}
{% macro median(expr) -%}
    {{ return(adapter.dispatch('median', 'kpiwatch')(expr)) }}
{%- endmacro %}

{% macro duckdb__median(expr) -%}
    median({{ expr }})
{%- endmacro %}

{% macro default__median(expr) -%}
    (
        percentile_disc(0.5) within group (order by {{ expr }})
        + percentile_disc(0.5) within group (order by {{ expr }} desc)
    ) / 2
{%- endmacro %}


{#- arg of the row with the smallest / largest val among the rows where `where` holds
    (rows with a null arg or val are skipped, as DuckDB's arg_min / arg_max do). Callers must
    make val unique within the group: ties are not broken the same way by both engines. -#}
{% macro arg_min(arg, val, where=none) -%}
    {{ return(adapter.dispatch('arg_min', 'kpiwatch')(arg, val, where)) }}
{%- endmacro %}

{% macro arg_max(arg, val, where=none) -%}
    {{ return(adapter.dispatch('arg_max', 'kpiwatch')(arg, val, where)) }}
{%- endmacro %}

{% macro duckdb__arg_min(arg, val, where=none) -%}
    arg_min({{ arg }}, {{ val }}){% if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{% macro duckdb__arg_max(arg, val, where=none) -%}
    arg_max({{ arg }}, {{ val }}){% if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{% macro default__arg_min(arg, val, where=none) -%}
    {{ kpiwatch._pg_arg_extreme(arg, val, where, 'asc') }}
{%- endmacro %}

{% macro default__arg_max(arg, val, where=none) -%}
    {{ kpiwatch._pg_arg_extreme(arg, val, where, 'desc') }}
{%- endmacro %}

{% macro _pg_arg_extreme(arg, val, where, direction) -%}
    (array_agg({{ arg }} order by {{ val }} {{ direction }}) filter (
        where {{ arg }} is not null and {{ val }} is not null{% if where %} and ({{ where }}){% endif %}
    ))[1]
{%- endmacro %}


{#- The first expr in the order given (an ORDER BY list; a null expr is returned as such).
    Write NULLS FIRST / LAST explicitly in order_by: the engines' defaults differ for DESC. -#}
{% macro first_ordered(expr, order_by) -%}
    {{ return(adapter.dispatch('first_ordered', 'kpiwatch')(expr, order_by)) }}
{%- endmacro %}

{% macro duckdb__first_ordered(expr, order_by) -%}
    first({{ expr }} order by {{ order_by }})
{%- endmacro %}

{% macro default__first_ordered(expr, order_by) -%}
    (array_agg({{ expr }} order by {{ order_by }}))[1]
{%- endmacro %}


{#- A string expression that sorts and compares byte by byte, as DuckDB's strings do. A
    Postgres database created with a linguistic collation (en_US.UTF-8, ICU) would otherwise
    order batch ids and check names differently (case, punctuation), and so break ties or
    join texts in another order than DuckDB. -#}
{% macro bytewise(expr) -%}
    {{ return(adapter.dispatch('bytewise', 'kpiwatch')(expr)) }}
{%- endmacro %}

{% macro duckdb__bytewise(expr) -%}
    {{ expr }}
{%- endmacro %}

{% macro default__bytewise(expr) -%}
    ({{ expr }} collate "C")
{%- endmacro %}


{#- How a period (its first day) is written for its frequency, as kpimodel/periods.py
    writes it: weekly '2026-W14' (ISO week), monthly '2026-03', quarterly '2026-Q3', annual
    '2026', fiscal_year '2019/20' (a fiscal year starting in January is '2019'). -#}
{% macro period_label(date_expr, frequency_expr, fiscal_start_month_expr='1') -%}
    {{ return(adapter.dispatch('period_label', 'kpiwatch')(date_expr, frequency_expr, fiscal_start_month_expr)) }}
{%- endmacro %}

{#- A quarter of a KPI whose year starts in another month than January (fiscal_start_month_expr)
    is labelled as a fiscal quarter, "2014/15 Q2" (July-September 2014 for an April year), as
    kpimodel/periods.py's label() does. -#}
{% macro duckdb__period_label(date_expr, frequency_expr, fiscal_start_month_expr='1') -%}
    case
        when {{ frequency_expr }} = 'quarterly' and coalesce({{ fiscal_start_month_expr }}, 1) <> 1
            and (month({{ date_expr }}) - coalesce({{ fiscal_start_month_expr }}, 1) + 12) % 3 = 0 then
            strftime({{ date_expr }} - (coalesce({{ fiscal_start_month_expr }}, 1) - 1) * interval '1 month', '%Y')
            || '/' || strftime({{ date_expr }} - (coalesce({{ fiscal_start_month_expr }}, 1) - 1) * interval '1 month'
                + interval 1 year, '%y')
            || ' Q' || cast((month({{ date_expr }}) - coalesce({{ fiscal_start_month_expr }}, 1) + 12) % 12 // 3 + 1 as varchar)
        when {{ frequency_expr }} = 'weekly' then strftime({{ date_expr }}, '%G-W%V')
        when {{ frequency_expr }} = 'quarterly' then strftime({{ date_expr }}, '%Y') || '-Q' || cast(quarter({{ date_expr }}) as varchar)
        when {{ frequency_expr }} = 'annual' then strftime({{ date_expr }}, '%Y')
        when {{ frequency_expr }} = 'fiscal_year' then
            case when month({{ date_expr }}) = 1 then strftime({{ date_expr }}, '%Y')
            else strftime({{ date_expr }}, '%Y') || '/' || strftime({{ date_expr }} + interval 1 year, '%y') end
        else strftime({{ date_expr }}, '%Y-%m')
    end
{%- endmacro %}

{% macro default__period_label(date_expr, frequency_expr, fiscal_start_month_expr='1') -%}
    case
        when {{ frequency_expr }} = 'quarterly' and coalesce({{ fiscal_start_month_expr }}, 1) <> 1
            and mod(cast(extract(month from {{ date_expr }}) as integer) - coalesce({{ fiscal_start_month_expr }}, 1) + 12, 3) = 0 then
            to_char({{ date_expr }} - (coalesce({{ fiscal_start_month_expr }}, 1) - 1) * interval '1 month', 'YYYY')
            || '/' || to_char({{ date_expr }} - (coalesce({{ fiscal_start_month_expr }}, 1) - 1) * interval '1 month'
                + interval '1 year', 'YY')
            || ' Q' || cast(mod(cast(extract(month from {{ date_expr }}) as integer) - coalesce({{ fiscal_start_month_expr }}, 1) + 12, 12) / 3 + 1 as varchar)
        when {{ frequency_expr }} = 'weekly' then to_char({{ date_expr }}, 'IYYY-"W"IW')
        when {{ frequency_expr }} = 'quarterly' then to_char({{ date_expr }}, 'YYYY-"Q"Q')
        when {{ frequency_expr }} = 'annual' then to_char({{ date_expr }}, 'YYYY')
        when {{ frequency_expr }} = 'fiscal_year' then
            case when extract(month from {{ date_expr }}) = 1 then to_char({{ date_expr }}, 'YYYY')
            else to_char({{ date_expr }}, 'YYYY') || '/' || to_char({{ date_expr }} + interval '1 year', 'YY') end
        else to_char({{ date_expr }}, 'YYYY-MM')
    end
{%- endmacro %}


{#- The last day (a date) of the period of `frequency_expr` that starts on date_expr. -#}
{% macro period_end(date_expr, frequency_expr) -%}
    case {{ frequency_expr }}
        when 'weekly' then cast({{ date_expr }} + interval '6 day' as date)
        when 'quarterly' then {{ kpiwatch.month_end(date_expr, months_ahead=2) }}
        when 'annual' then {{ kpiwatch.month_end(date_expr, months_ahead=11) }}
        when 'fiscal_year' then {{ kpiwatch.month_end(date_expr, months_ahead=11) }}
        else {{ kpiwatch.month_end(date_expr) }}
    end
{%- endmacro %}


{#- The start of the last whole period of `frequency_expr` that ended before the date `cutoff_expr`
    (a KPI's due period, a source's expected period: cutoff = as_of - lag_days). One definition for
    int_kpi_due and int_source_freshness. -#}
{% macro last_period_ended_by(cutoff_expr, frequency_expr, fiscal_start_month_expr) -%}
    case {{ frequency_expr }}
        when 'weekly' then cast(date_trunc('week', {{ cutoff_expr }}) - interval '7 day' as date)
        when 'quarterly' then cast(date_trunc('quarter', {{ cutoff_expr }}) - interval '3 month' as date)
        when 'annual' then cast(date_trunc('year', {{ cutoff_expr }}) - interval '1 year' as date)
        when 'fiscal_year' then cast(
            date_trunc('year', {{ cutoff_expr }} - ({{ fiscal_start_month_expr }} - 1) * interval '1 month')
            + ({{ fiscal_start_month_expr }} - 1) * interval '1 month'
            - interval '1 year' as date
        )
        else cast(date_trunc('month', {{ cutoff_expr }}) - interval '1 month' as date)
    end
{%- endmacro %}
