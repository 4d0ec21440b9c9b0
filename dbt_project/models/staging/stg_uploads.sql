select
    team_id,
    id as upload_id,
    bucket_id,
    sector,
    status,
    total_rows,
    accepted_rows,
    rejected_rows,
    merged_rows,
    inserted_leads,
    created_at,
    finished_at
from {{ source('outreach', 'uploads') }}
