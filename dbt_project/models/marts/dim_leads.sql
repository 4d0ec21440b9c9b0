-- Every lead with its score and the furthest funnel stage it reached. An opt-out wins over
-- everything; then, furthest first: deal, meeting, qualified (the lead's status), email
-- captured, interested (a positive reply), responded, delivered, contacted, new.
with reached as (
    select
        team_id,
        lead_id,
        bool_or(delivered) as delivered
    from {{ ref('int_campaign_contacts') }}
    group by team_id, lead_id
),

replies as (
    select
        team_id,
        lead_id,
        bool_or(sentiment = 'positive') as interested,
        bool_or(is_email_capture) as email_captured,
        bool_or(is_opt_out) as opted_out
    from {{ ref('stg_inbox_items') }}
    where lead_id is not null
    group by team_id, lead_id
)

select
    l.team_id,
    l.lead_id,
    l.full_name,
    l.company_name,
    l.state,
    l.bucket_id,
    l.sector,
    l.enrichment_status,
    l.score,
    case
        when p.opted_out then 'opted_out'
        when l.is_deal then 'deal'
        when l.has_meeting then 'meeting'
        when l.is_qualified then 'qualified'
        when p.email_captured then 'email_captured'
        when p.interested then 'interested'
        when p.lead_id is not null then 'responded'
        when r.delivered then 'delivered'
        when r.lead_id is not null then 'contacted'
        else 'new'
    end as funnel_stage
from {{ ref('stg_leads') }} as l
left join reached as r on r.team_id = l.team_id and r.lead_id = l.lead_id
left join replies as p on p.team_id = l.team_id and p.lead_id = l.lead_id
