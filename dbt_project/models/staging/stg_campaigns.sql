select
    team_id,
    id as campaign_id,
    name as campaign_name,
    type as campaign_type,
    status as campaign_status,
    budget,
    created_at
from {{ source('outreach', 'campaigns') }}
