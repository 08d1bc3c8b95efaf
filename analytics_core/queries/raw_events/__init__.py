"""Questions the aggregates cannot answer, read from the raw events table through its indexes.

- :mod:`.entity`: how one user, project or cocoon behaves, and leaderboards across them.
- :mod:`.live`: what is happening now, over windows of minutes.

Import the functions and result types from :mod:`analytics_core.queries`; this package
re-exports nothing, as :mod:`analytics_core.queries.metrics` does not.
"""
