-- Replies per campaign and classification (every reply its inbox item gives the campaign).
select
    team_id,
    campaign_id,
    classification,
    count(*)::integer as replies
from {{ ref('stg_inbox_items') }}
where campaign_id is not null
group by team_id, campaign_id, classification
