-- Users created in the week. Weeks start on Monday (date_trunc).
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select date_trunc('week', createdat) as week,
       count(*) as sign_ups
from pulumi.users
group by 1
order by 1
