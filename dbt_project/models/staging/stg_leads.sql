-- One row per lead. `status` is set by a person or their CRM (PATCH /v1/leads/{id},
-- outreach_core.db.states.LeadStatus); the later funnel stages are read from it, each
-- including those after it (`lead_funnel`, in its order).
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
    status in {{ sql_list(var('lead_funnel')) }} as is_qualified,
    status in {{ sql_list(var('lead_funnel')[1:]) }} as has_meeting,
    status in {{ sql_list(var('lead_funnel')[2:]) }} as is_deal,
    source_upload_id,
    created_at
from {{ source('outreach', 'leads') }}
