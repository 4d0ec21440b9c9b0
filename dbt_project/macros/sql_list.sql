{#- `('a', 'b')` from a list of values passed in `--vars` (the states of outreach_core). -#}
{% macro sql_list(values) -%}
    ({%- for value in values -%}
        '{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}
