-- Page calls per day on each website. "timestamp" is quoted because it is a
-- reserved word.
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select date_trunc('day', "timestamp") as day,
       property,
       count(*) as page_views
from (
    select 'blog' as property, "timestamp" from blog.pages
    union all
    select 'www' as property, "timestamp" from www.pages
    union all
    select 'io' as property, "timestamp" from io.pages
) as views
group by 1, 2
order by 1, 2
