select
    team_id,
    id as lead_id,
    bucket_id,
    sector,
    state,
    city,
    phone is not null as has_phone,
    email is not null as has_email,
    score,
    status,
    source_upload_id,
    created_at
from {{ source('outreach', 'leads') }}
