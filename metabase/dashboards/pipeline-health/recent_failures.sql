-- Loads that failed in the last 14 days, newest first.
-- Portable SQL: it runs on PostgreSQL and on Redshift.
select finished_at,
       pipeline,
       stream,
       flow_run_id,
       error
from _etl.run_history
where status = 'failed'
  and finished_at >= current_date - interval '14 days'
order by finished_at desc
limit 200
