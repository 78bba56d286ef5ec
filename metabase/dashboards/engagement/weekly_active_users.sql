-- People who started at least one update, preview, refresh or destroy in the
-- week. Weeks start on Monday (date_trunc).
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select date_trunc('week', starttime) as week,
       count(distinct requestedby) as active_users
from pulumi.programupdates
group by 1
order by 1
