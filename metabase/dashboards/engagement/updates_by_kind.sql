-- Operations started per week and kind (update, preview, refresh, destroy).
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select date_trunc('week', starttime) as week,
       kind,
       count(*) as updates
from pulumi.programupdates
group by 1, 2
order by 1, 2
