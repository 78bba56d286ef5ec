-- Stacks with at least one update, preview, refresh or destroy that started
-- in the last 30 days.
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select count(distinct stackid) as active_stacks
from pulumi.programupdates
where starttime >= current_date - interval '30 days'
