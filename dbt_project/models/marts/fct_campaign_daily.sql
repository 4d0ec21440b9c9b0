-- The send, delivery and response funnel of each campaign by UTC day: the leads the
-- campaign first reached that day and what came of them (int_campaign_contacts).
with daily as (
    select
        team_id,
        campaign_id,
        first_day as day,
        count(*) as sent,
        count(*) filter (where delivered) as delivered,
        count(*) filter (where failed) as failed,
        count(*) filter (where responded) as responded,
        count(*) filter (where sentiment = 'positive') as positive,
        count(*) filter (where sentiment = 'neutral') as neutral,
        count(*) filter (where sentiment = 'negative') as negative,
        count(*) filter (where opted_out) as opt_outs,
        count(*) filter (where email_captured) as emails_captured,
        count(*) filter (where qualified) as qualified,
        count(*) filter (where meeting) as meetings,
        count(*) filter (where deal) as deals
    from {{ ref('int_campaign_contacts') }}
    group by team_id, campaign_id, first_day
)

select
    d.team_id,
    d.campaign_id,
    c.campaign_name,
    d.day,
    d.sent::integer as sent,
    d.delivered::integer as delivered,
    d.failed::integer as failed,
    d.responded::integer as responded,
    d.positive::integer as positive,
    d.neutral::integer as neutral,
    d.negative::integer as negative,
    d.opt_outs::integer as opt_outs,
    d.emails_captured::integer as emails_captured,
    d.qualified::integer as qualified,
    d.meetings::integer as meetings,
    d.deals::integer as deals,
    round(d.delivered::numeric / nullif(d.sent, 0), 4)::numeric(5, 4) as delivery_rate,
    round(d.responded::numeric / nullif(d.delivered, 0), 4)::numeric(5, 4) as response_rate,
    round(d.positive::numeric / nullif(d.responded, 0), 4)::numeric(5, 4) as positive_rate,
    round(d.opt_outs::numeric / nullif(d.delivered, 0), 4)::numeric(5, 4) as opt_out_rate
from daily as d
join {{ ref('stg_campaigns') }} as c
    on c.team_id = d.team_id and c.campaign_id = d.campaign_id
