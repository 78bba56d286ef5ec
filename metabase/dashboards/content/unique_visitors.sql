-- Distinct anonymous ids with a page call in the day, per website. A visitor
-- of two websites counts once on each.
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select date_trunc('day', "timestamp") as day,
       property,
       count(distinct anonymous_id) as visitors
from (
    select 'blog' as property, "timestamp", anonymous_id from blog.pages
    union all
    select 'www' as property, "timestamp", anonymous_id from www.pages
    union all
    select 'io' as property, "timestamp", anonymous_id from io.pages
) as views
group by 1, 2
order by 1, 2
