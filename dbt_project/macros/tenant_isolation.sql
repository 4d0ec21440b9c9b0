{#- Post-hook of every mart: the row-level policy of the operational tables (the expression
    comes from outreach_core.db.rls through the `current_team` var), forced so the owner's
    own sessions are filtered too unless they bypass RLS, and the application role's SELECT (its
    USAGE on the schema is granted once, on-run-end: two threads granting on one schema at
    once fail with 'tuple concurrently updated').
    dbt replaces the table on each build, so policy and grants are made anew each time. -#}
{% macro tenant_isolation() -%}
    {%- set app_role = adapter.quote(var('app_role')) -%}
    alter table {{ this }} enable row level security;
    alter table {{ this }} force row level security;
    drop policy if exists tenant_isolation on {{ this }};
    create policy tenant_isolation on {{ this }}
        using (team_id = {{ var('current_team') }});
    grant select on {{ this }} to {{ app_role }}
{%- endmacro %}
