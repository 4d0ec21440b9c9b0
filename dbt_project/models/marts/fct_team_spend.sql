-- Each team's spend per UTC month and category (and the total) against its monthly caps,
-- for every month the team spent anything in; a category without spend that month is 0.
with spend as (
    select team_id, month, category, sum(amount) as spent
    from {{ ref('stg_cost_ledger') }}
    group by team_id, month, category
),

months as (
    select team_id, month, sum(spent) as total
    from spend
    group by team_id, month
),

categories as (
    {%- for category in var('cost_categories') + ['total'] %}
    select '{{ category }}'::text as category
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

grid as (
    select
        m.team_id,
        m.month,
        c.category,
        case when c.category = 'total' then m.total else coalesce(s.spent, 0) end as spent
    from months as m
    cross join categories as c
    left join spend as s
        on s.team_id = m.team_id and s.month = m.month and s.category = c.category
)

select
    g.team_id,
    g.month,
    g.category,
    g.spent::numeric(14, 4) as spent,
    b.cap,
    round(g.spent / nullif(b.cap, 0), 4)::numeric(14, 4) as budget_used
from grid as g
left join {{ ref('stg_team_budgets') }} as b
    on b.team_id = g.team_id and b.category = g.category
