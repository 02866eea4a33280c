"""The encrypted DuckDB extract the app reads, and what is derived from one build of it.

- ``store``: the AES-256-GCM DuckDB file, built aside and swapped in atomically; locked
  read-only cursors for queries.
- ``derived``: tables built from the base tables in the same build (``dv_view``, rollups).
- ``build_cache``: objects computed from one build, held in memory until the next build.
- ``writer_lock``: one writer (a sync or an erasure) per extract at a time.
- ``pseudonym``: keyed pseudonyms, the only viewer identifier that reaches the extract.

Depends on ``data.schema`` and ``settings`` only: the sync writes through it and the queries
read through it, never the other way round.
"""
