{#- A model's `+schema` is its schema, as is: dbt's default would prefix the profile's schema
    (`analytics` + `analytics` -> `analytics_analytics`). As in dbt's jaffle-shop. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
