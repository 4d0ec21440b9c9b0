-- Outbound messages with what the funnel needs of their status (the status sets come from
-- outreach_core.db.states through --vars). A message's day is when it went out (UTC).
select
    team_id,
    id as message_id,
    kind,
    campaign_id,
    lead_id,
    to_phone,
    status,
    status in {{ sql_list(var('message_sent_statuses')) }} as went_out,
    status in {{ sql_list(var('message_delivered_statuses')) }} as delivered,
    status in {{ sql_list(var('message_failed_statuses')) }} as failed,
    (coalesce(sent_at, claimed_at, created_at) at time zone 'UTC')::date as sent_day,
    segments,
    price
from {{ source('outreach', 'messages') }}
