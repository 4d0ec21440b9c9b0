-- One row per team and category (each cost category and `total`), from the one-column-per-
-- category caps (`<category>_monthly_cap`, outreach_core.costs.budget.cap_column).
{% for category in var('cost_categories') + ['total'] %}
select team_id, '{{ category }}'::text as category, {{ category }}_monthly_cap as cap
from {{ source('outreach', 'team_budgets') }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
