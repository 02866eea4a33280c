"""Replicas: each app server keeps its own copy of an extract that one place builds.

With several app servers (docs/architecture.md, "Replicas"), the sync runs in one place (cron,
or the one server whose data folder is the published one) and writes the published extract.
Every replica then runs :func:`pull_extract` on a timer (``cli.py pull-extract --from PATH``):
when the published file has changed since the last pull, its encrypted bytes are copied beside
the replica's live extract, checked (encrypted, opens with the key, has a build id) and swapped
in atomically. The replica's readers see the new inode on their next cursor and its query caches
change key with the file, exactly as after a local sync.

A copy, not a shared data folder, because: DuckDB over a network file system reads every page
through it on every query and relies on locks and attribute caches NFS does not promise; a local
copy answers at local-disk speed, keeps serving when the shared path is briefly unreachable, and
the extract is still decrypted only in memory (the same ``extract_key`` on every replica). The
source is read through one open file, so a publisher swapping in a new build mid-copy (an atomic
rename) never yields a mixed file; and a copy that fails its checks never replaces anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from data.extract.store import ExtractError, ExtractStore
from data.extract.writer_lock import writer_lock


@dataclass(frozen=True)
class PullResult:
    """What a pull did: ``copied`` a new build in, or found it ``unchanged``."""

    status: str  # "copied" or "unchanged"
    build_id: str
    bytes: int
    seconds: float


def _stamp_path(store: ExtractStore) -> Path:
    return store.path.with_name(store.path.name + ".pulled")


def _source_identity(fd: int) -> dict[str, int]:
    st = os.fstat(fd)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _read_stamp(store: ExtractStore) -> dict:
    try:
        return json.loads(_stamp_path(store).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def pull_extract(source: Path, store: ExtractStore, *, wait_seconds: float = 60.0) -> PullResult:
    """Make ``store``'s live extract a copy of the published ``source`` if that has changed.

    Raises ExtractError when the source is missing or not a good extract for this key (the live
    extract is then kept), ExtractBusyError when a local sync or erasure holds the writer lock
    for longer than ``wait_seconds``.
    """
    started = time.perf_counter()
    source = Path(source)
    if source.resolve() == store.path.resolve():
        raise ExtractError(f"{source} is this server's own extract; pull from the published one.")
    try:
        fd = os.open(source, os.O_RDONLY)
    except FileNotFoundError:
        raise ExtractError(
            f"No published extract at {source}: run the sync (cli.py sync) where it is published."
        ) from None
    try:
        identity = _source_identity(fd)
        stamp = _read_stamp(store)
        if stamp.get("source") == identity and store.exists():
            return PullResult("unchanged", stamp.get("build_id", ""), 0, 0.0)
        with writer_lock(store.path, wait_seconds=wait_seconds):
            candidate = store.building_path()
            try:
                with os.fdopen(os.dup(fd), "rb") as src, open(candidate, "xb") as dst:
                    os.chmod(candidate, 0o600)
                    shutil.copyfileobj(src, dst, length=8 * 1024 * 1024)
                build_id = store.install(candidate)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    candidate.unlink()
            _stamp_path(store).write_text(json.dumps({"source": identity, "build_id": build_id}))
        return PullResult("copied", build_id, identity["size"], time.perf_counter() - started)
    finally:
        os.close(fd)
