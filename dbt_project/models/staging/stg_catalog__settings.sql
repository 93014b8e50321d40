-- The reporting date ("today") of the run, always exactly one row.
-- The project var `as_of_date` ('YYYY-MM-DD') overrides catalog.settings.as_of when set;
-- with neither, the current date is used.

with

source as (

    select * from {{ source('catalog', 'settings') }}

),

final as (

    select
        {% if var('as_of_date', none) -%}
        cast('{{ var("as_of_date") }}' as date) as as_of_date
        {%- else -%}
        coalesce(cast(max(as_of) as date), current_date) as as_of_date
        {%- endif %}
    from source

)

select * from final
