-- One row per processed inbound text or call, with its classification and the reply
-- sentiment the funnel counts (class groups from outreach_core.replies.stages via --vars).
select
    team_id,
    id as inbox_item_id,
    lead_id,
    campaign_id,
    contact_phone,
    channel,
    classification,
    bucket,
    case
        when classification in {{ sql_list(var('positive_classes')) }} then 'positive'
        when classification in {{ sql_list(var('negative_classes')) }} then 'negative'
        else 'neutral'
    end as sentiment,
    classification = '{{ var("opt_out_class") }}' as is_opt_out,
    classification = '{{ var("email_capture_class") }}' as is_email_capture,
    created_at as received_at
from {{ source('outreach', 'inbox_items') }}
