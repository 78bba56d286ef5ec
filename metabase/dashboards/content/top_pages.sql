-- The 25 most viewed paths in the last 90 days, with distinct visitors.
-- Portable SQL: it runs on PostgreSQL and on Redshift, so it avoids
-- PostgreSQL-only features such as FILTER, generate_series and DISTINCT ON.
select property,
       path,
       count(*) as page_views,
       count(distinct anonymous_id) as visitors
from (
    select 'blog' as property, path, anonymous_id, "timestamp" from blog.pages
    union all
    select 'www' as property, path, anonymous_id, "timestamp" from www.pages
    union all
    select 'io' as property, path, anonymous_id, "timestamp" from io.pages
) as views
where "timestamp" >= current_date - interval '90 days'
group by 1, 2
order by 3 desc, 1, 2
limit 25
