"""One writer at a time for an extract: a sync and an erasure must never build side by side.

Two builders that each start from the live extract and swap in their result would lose one's
work: an erasure finishing during a long sync would be undone when the sync swaps in a copy
taken before it, resurrecting the erased viewer. An advisory ``flock`` on a file beside the
extract serialises them; the kernel releases it when the process ends, even by SIGKILL, so a
killed sync never leaves the extract locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class ExtractBusyError(RuntimeError):
    """Another sync or erasure is writing this extract."""


@contextlib.contextmanager
def writer_lock(
    extract_path: Path,
    *,
    wait_seconds: float = 0.0,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold the extract's writer lock for the block; wait up to ``wait_seconds`` for it.

    ``on_wait`` is called once, when the lock is found taken and the caller is to wait."""
    extract_path = Path(extract_path)
    extract_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_path = extract_path.with_name(extract_path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None and time.monotonic() < deadline:
                    on_wait()
                    on_wait = None
                if time.monotonic() >= deadline:
                    raise ExtractBusyError(
                        f"Another sync or erasure is writing {extract_path.name}; try again when "
                        "it has finished."
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
