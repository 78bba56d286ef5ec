-- Rows loaded by successful runs per day and pipeline, last 30 days.
-- Portable SQL: it runs on PostgreSQL and on Redshift.
select date_trunc('day', finished_at) as day,
       pipeline,
       sum(rows_loaded) as rows_loaded
from _etl.run_history
where status = 'succeeded'
  and finished_at >= current_date - interval '30 days'
group by 1, 2
order by 1, 2
