-- Destroys as a share of all operations started in the week (0 to 1).
-- The CASE sum replaces count(*) FILTER (...), which Redshift lacks.
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select date_trunc('week', starttime) as week,
       sum(case when kind = 'destroy' then 1 else 0 end) * 1.0 / count(*) as destroy_ratio
from pulumi.programupdates
group by 1
order by 1
