{#- on-run-end: the application role may look into the schemas this run built in (each
    mart's tenant_isolation post-hook grants SELECT on the mart itself, under its row
    policy). `schemas` is dbt's on-run-end list, empty when nothing was built. -#}
{% macro grant_analytics_usage(schemas) -%}
    {%- for schema in schemas %}
    grant usage on schema {{ adapter.quote(schema) }} to {{ adapter.quote(var('app_role')) }};
    {%- endfor %}
{%- endmacro %}
