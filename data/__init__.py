"""Everything below the pages that touches data; no module here imports streamlit.

One package per concern, dependencies one way (an arrow reads "may import"):

    queries/  ──►  extract/  ◄──  sync/
        │             │             │
        └──────►  schema.py  ◄──────┘        demo.py ──► extract/, schema.py
                                             export/      (imports nothing of data/)

- ``schema``: the warehouse model (star schema) and its DDL for Redshift, PostgreSQL and DuckDB,
  shared by the sync, the extract and the demo generator.
- ``extract``: the encrypted DuckDB store, its derived tables, the per-build memory cache, the
  writer lock and viewer pseudonyms. It imports neither the sync nor the queries.
- ``sync``: warehouse drivers, what is read per table (extract specs), the sync run and GDPR
  erasure. The only code that writes an extract (besides the demo generator).
- ``queries``: what pages read: filters, the metric catalog, the in-memory index, the dashboard
  queries. Read only, through locked cursors; it never imports the sync (ruff bans it).
- ``export``: CSV and Excel files made safe to open in a spreadsheet.
- ``demo``: the generated demo platform, the app's embedded default.
"""
