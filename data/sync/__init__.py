"""Warehouse -> extract: the only code that writes an extract from the warehouse.

- ``warehouse``: the drivers (ADBC, redshift_connector) behind one interface, with retries.
- ``extract_specs``: per extract table, what is read, how it merges and how it is reconciled.
- ``run``: one sync run: read, merge, reconcile, refresh derived tables, swap in.
- ``erasure``: GDPR erasure of a viewer, kept out of every later sync.
- ``source_map``: the warehouse mapping (the operator's table, view and column names).
- ``warehouse_check`` and ``cli_commands``: ``python cli.py warehouse check`` and ``ddl``.

Depends on ``data.extract`` and ``data.schema``; never on ``data.queries``.
"""
