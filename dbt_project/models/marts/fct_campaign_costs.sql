-- What each campaign cost, by category, and per lead reached, response, email capture and
-- deal. Texts are the ledger's entries for the campaign; a follow-up's text counts as
-- follow-up SMS of the campaign it follows up (stg_follow_up_messages), whichever campaign
-- its ledger entry names. Enrichment is what the leads the campaign reached cost to
-- enrich: each lead's credits (its enrichment cache entry, shared equally by the leads with
-- that identity) at the team's average price per credit. The budget is what the send path
-- holds the campaign to: the ledger entries that name it (outreach_core.costs.budget), so
-- budget_used agrees with when the campaign pauses; enrichment is a team cost, not the
-- campaign budget's.
with ledger as (
    select
        team_id,
        campaign_id,
        coalesce(sum(amount) filter (where category = 'sms'), 0) as sms,
        coalesce(sum(amount) filter (where category = 'voice'), 0) as voice,
        coalesce(sum(amount) filter (where category = 'email'), 0) as email
    from {{ ref('stg_cost_ledger') }}
    where campaign_id is not null
    group by team_id, campaign_id
),

follow_up_entries as (
    select
        f.team_id,
        f.campaign_id,
        l.campaign_id as ledger_campaign_id,
        l.amount
    from {{ ref('stg_cost_ledger') }} as l
    join {{ ref('stg_follow_up_messages') }} as f
        on f.team_id = l.team_id and f.message_id = l.message_id
    where l.category = 'sms'
),

follow_ups as (
    select team_id, campaign_id, sum(amount) as follow_up_sms
    from follow_up_entries
    where campaign_id is not null
    group by team_id, campaign_id
),

-- Follow-up entries the ledger booked on a campaign: counted as follow-ups, not twice.
booked_follow_ups as (
    select team_id, ledger_campaign_id as campaign_id, sum(amount) as amount
    from follow_up_entries
    where ledger_campaign_id is not null
    group by team_id, ledger_campaign_id
),

price_per_credit as (
    select team_id, sum(amount) / nullif(sum(units), 0) as price
    from {{ ref('stg_cost_ledger') }}
    where category = 'enrichment'
    group by team_id
),

lead_credits as (
    select
        l.team_id,
        l.lead_id,
        c.credits::numeric / count(*) over (partition by l.team_id, l.enrichment_key) as credits
    from {{ ref('stg_leads') }} as l
    join {{ ref('stg_enrichment_cache') }} as c
        on c.team_id = l.team_id and c.identity_key = l.enrichment_key
    where c.credits > 0
),

contacts as (
    select
        k.team_id,
        k.campaign_id,
        count(*) as leads,
        count(*) filter (where k.responded) as responses,
        count(*) filter (where k.email_captured) as email_captures,
        count(*) filter (where k.deal) as deals,
        coalesce(sum(lc.credits * p.price), 0) as enrichment
    from {{ ref('int_campaign_contacts') }} as k
    left join lead_credits as lc
        on lc.team_id = k.team_id and lc.lead_id = k.lead_id
    left join price_per_credit as p
        on p.team_id = k.team_id
    group by k.team_id, k.campaign_id
),

costs as (
    select
        c.team_id,
        c.campaign_id,
        c.campaign_name,
        c.budget,
        round(coalesce(k.enrichment, 0), 4)::numeric(14, 4) as enrichment_cost,
        (coalesce(g.sms, 0) - coalesce(b.amount, 0))::numeric(14, 4) as sms_cost,
        coalesce(f.follow_up_sms, 0)::numeric(14, 4) as follow_up_sms_cost,
        coalesce(g.voice, 0)::numeric(14, 4) as voice_cost,
        coalesce(g.email, 0)::numeric(14, 4) as email_cost,
        (coalesce(g.sms, 0) + coalesce(g.voice, 0) + coalesce(g.email, 0))::numeric(14, 4)
            as budget_spent,
        coalesce(k.leads, 0)::integer as leads,
        coalesce(k.responses, 0)::integer as responses,
        coalesce(k.email_captures, 0)::integer as email_captures,
        coalesce(k.deals, 0)::integer as deals
    from {{ ref('stg_campaigns') }} as c
    left join contacts as k on k.team_id = c.team_id and k.campaign_id = c.campaign_id
    left join ledger as g on g.team_id = c.team_id and g.campaign_id = c.campaign_id
    left join follow_ups as f on f.team_id = c.team_id and f.campaign_id = c.campaign_id
    left join booked_follow_ups as b on b.team_id = c.team_id and b.campaign_id = c.campaign_id
),

totals as (
    select
        *,
        (enrichment_cost + sms_cost + follow_up_sms_cost + voice_cost + email_cost)::numeric(14, 4)
            as total_cost
    from costs
)

select
    team_id,
    campaign_id,
    campaign_name,
    budget,
    enrichment_cost,
    sms_cost,
    follow_up_sms_cost,
    voice_cost,
    email_cost,
    total_cost,
    budget_spent,
    leads,
    responses,
    email_captures,
    deals,
    round(total_cost / nullif(leads, 0), 4)::numeric(14, 4) as cost_per_lead,
    round(total_cost / nullif(responses, 0), 4)::numeric(14, 4) as cost_per_response,
    round(total_cost / nullif(email_captures, 0), 4)::numeric(14, 4) as cost_per_email_capture,
    round(total_cost / nullif(deals, 0), 4)::numeric(14, 4) as cost_per_deal,
    round(budget_spent / nullif(budget, 0), 4)::numeric(14, 4) as budget_used
from totals
