{#- The grain of a mart: no two rows share these columns (dbt_utils' test, without the
    package: packages need a network). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_with_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
