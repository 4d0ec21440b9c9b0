-- Follow-up messages (no campaign of their own) with the campaign they follow up: that of
-- the inbox item their workflow execution answers.
select
    m.team_id,
    m.id as message_id,
    i.campaign_id,
    m.lead_id,
    m.status
from {{ source('outreach', 'messages') }} as m
join {{ source('outreach', 'workflow_executions') }} as e
    on e.team_id = m.team_id and e.id = m.workflow_execution_id
join {{ source('outreach', 'inbox_items') }} as i
    on i.team_id = e.team_id and i.id = e.inbox_item_id
where m.kind = '{{ var("follow_up_message_kind") }}'
