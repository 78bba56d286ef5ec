-- Each stream's last successful load (the _etl.table_freshness view), oldest
-- first. Times are UTC.
-- Portable SQL: it runs on PostgreSQL and on Redshift.
select pipeline,
       stream,
       last_success_at,
       rows_loaded_total
from _etl.table_freshness
order by last_success_at, pipeline, stream
