select
    team_id,
    identity_key,
    status,
    credits
from {{ source('outreach', 'enrichment_cache') }}
