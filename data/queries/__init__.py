"""What pages read: filters, the metric catalog and the dashboard queries. Read only.

- ``filters``: the user's date range, comparison and dimension filters; the creator scope.
- ``metrics``: the metric catalog (one definition per metric) and the queries behind it.
- ``viewer_index``, ``subscription_days``: exact aggregates from arrays held in memory per build.
- ``view_filters``: WHERE fragments shared by the dashboard queries.
- ``dimensions``: the values each filter can take (scoped).
- ``engagement``, ``comparison``, ``title_periods``: the Engagement, Compare and
  underperformance queries.

Depends on ``data.extract`` (cursors, the build cache) and ``data.schema``; never imports
``data.sync`` (enforced by ruff's banned-api rule in this folder).
"""
