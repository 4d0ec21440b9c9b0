-- One row per lead. `status` is the seed's free-text lead status: a CRM or a person sets
-- `qualified`, `meeting` or `deal` there; the later funnel stages are read from it, each
-- including those after it.
select
    team_id,
    id as lead_id,
    coalesce(
        nullif(trim(contact_name), ''),
        nullif(trim(concat_ws(' ', first_name, last_name)), '')
    ) as full_name,
    company_name,
    state,
    city,
    bucket_id,
    sector,
    phone,
    phone is not null as has_phone,
    email is not null as has_email,
    enrichment_status,
    enrichment_key,
    score,
    status,
    status in ('qualified', 'meeting', 'deal') as is_qualified,
    status in ('meeting', 'deal') as has_meeting,
    status = 'deal' as is_deal,
    source_upload_id,
    created_at
from {{ source('outreach', 'leads') }}
