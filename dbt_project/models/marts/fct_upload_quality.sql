-- Per team and bucket: how much of what teams upload is usable.
select
    team_id,
    bucket_id,
    count(*) as uploads,
    sum(total_rows) as rows_in,
    sum(accepted_rows) as rows_accepted,
    sum(rejected_rows) as rows_rejected,
    sum(inserted_leads) as leads_created,
    round(sum(accepted_rows)::numeric / nullif(sum(total_rows), 0), 4)::numeric(5, 4)
        as acceptance_rate
from {{ ref('stg_uploads') }}
where status = 'completed'
group by team_id, bucket_id
