-- One row per ledger entry. A priced message's entry names it in its reference
-- (`message:<message id>:<provider sid>`, outreach_core.messaging.delivery).
select
    team_id,
    id as entry_id,
    category,
    provider,
    operation,
    units,
    amount,
    campaign_id,
    upload_id,
    case
        when reference ~ '^message:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:'
            then split_part(reference, ':', 2)::uuid
    end as message_id,
    created_at,
    date_trunc('month', created_at at time zone 'UTC')::date as month
from {{ source('outreach', 'cost_ledger') }}
