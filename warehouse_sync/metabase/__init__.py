"""Keep Metabase current with the warehouse: schema sync, foreign-key metadata, dashboards as code, card health.

Every step plans first, sends only the differences, and collects problems so a
run reports all of them before it fails. ``refresh.refresh_metabase`` runs the
steps in order; without ``METABASE_URL`` it checks the cards' SQL and the
foreign-key plan against the warehouse instead (see docs/metabase.md).
"""
