-- One row per lead a campaign reached (at least one of its messages went out): the unit of
-- the campaign funnel. A contact counts on the UTC day the campaign first reached it, with
-- everything that came of it since, so every rate of a day is a share of that day's sends.
-- Replies belong to the campaign their inbox item names and to its lead (the team's lead
-- with the phone that wrote).
with reached as (
    select
        team_id,
        campaign_id,
        lead_id,
        min(sent_day) as first_day,
        count(*) as messages,
        bool_or(delivered) as confirmed_delivered,
        bool_or(failed) as any_failed
    from {{ ref('stg_messages') }}
    where kind = '{{ var("campaign_message_kind") }}' and went_out
    group by team_id, campaign_id, lead_id
),

replies as (
    select
        team_id,
        campaign_id,
        lead_id,
        count(*) as replies,
        bool_or(sentiment = 'positive') as any_positive,
        bool_or(sentiment = 'negative') as any_negative,
        bool_or(is_opt_out) as opted_out,
        bool_or(is_email_capture) as email_captured
    from {{ ref('stg_inbox_items') }}
    where campaign_id is not null and lead_id is not null
    group by team_id, campaign_id, lead_id
)

select
    r.team_id,
    r.campaign_id,
    r.lead_id,
    r.first_day,
    r.messages,
    -- A reply proves the text arrived, whatever the carrier's receipt said (or did not).
    r.confirmed_delivered or p.replies is not null as delivered,
    not (r.confirmed_delivered or p.replies is not null) and r.any_failed as failed,
    p.replies is not null as responded,
    -- One sentiment per contact: an opt-out outweighs all, then any positive reply.
    case
        when p.replies is null then null
        when p.opted_out then 'negative'
        when p.any_positive then 'positive'
        when p.any_negative then 'negative'
        else 'neutral'
    end as sentiment,
    coalesce(p.opted_out, false) as opted_out,
    coalesce(p.email_captured, false) as email_captured,
    coalesce(l.is_qualified, false) as qualified,
    coalesce(l.has_meeting, false) as meeting,
    coalesce(l.is_deal, false) as deal
from reached as r
left join replies as p
    on p.team_id = r.team_id and p.campaign_id = r.campaign_id and p.lead_id = r.lead_id
left join {{ ref('stg_leads') }} as l
    on l.team_id = r.team_id and l.lead_id = r.lead_id
