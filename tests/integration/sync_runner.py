"""Runs one sync in its own process, for the test that kills a sync mid-way (SIGKILL).

Usage: python -m tests.integration.sync_runner '<json: warehouse config, extract path, key>'.
Prints one line per progress event and flushes it, so the test knows when batches are
streaming. Each batch also pauses briefly: a slow network link, so that the kill lands while
rows are still arriving rather than after the sync has finished.
"""

from __future__ import annotations

import json
import sys
import time

from data.extract.store import ExtractStore
from data.sync.run import SyncProgress, run_sync
from data.sync.warehouse import RetryPolicy, Warehouse


def main() -> int:
    args = json.loads(sys.argv[1])
    warehouse = Warehouse.from_mapping(args["warehouse"], RetryPolicy(attempts=1))
    store = ExtractStore(args["extract"], args["key"])

    def progress(event: SyncProgress) -> None:
        print(f"{event.phase} {event.table} {event.rows}", flush=True)
        if event.phase == "read":
            time.sleep(0.05)

    result = run_sync(
        warehouse=warehouse, store=store, full=args.get("full", False), progress=progress
    )
    print("RESULT", result.outcome, result.error, flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
