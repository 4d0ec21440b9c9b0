{#- The operational tables force row-level security: a dbt role that is neither a superuser
    nor BYPASSRLS would see no team's rows and build empty marts without a word. -#}
{% macro assert_reads_every_team() -%}
    do $$
    begin
        if not (select rolsuper or rolbypassrls from pg_roles where rolname = current_user) then
            raise exception 'dbt connects as %, which row-level security filters: the analytics build needs the owner (migration) role with SUPERUSER or BYPASSRLS', current_user;
        end if;
    end
    $$
{%- endmacro %}
