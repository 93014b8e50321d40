{#-
    Use a model's custom schema verbatim (staging / intermediate / marts) instead of dbt's
    default "<target_schema>_<custom_schema>": the warehouse contract (docs/warehouse.md)
    names these schemas exactly, and other stages read them by name.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
