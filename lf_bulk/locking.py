"""Advisory locks so that two processes never drive the same run (or reconcile the same groups).

flock is released by the kernel when a process dies, even by SIGKILL, so a crash never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from lf_bulk import wire
from lf_bulk.errors import RunLocked


def _lock_path(home: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    directory = home / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{safe}.lock"


@contextmanager
def exclusive(home: Path, name: str, what: str) -> Iterator[None]:
    path = _lock_path(home, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # The file's text is shown, not trusted: anyone may have written into it.
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            holder = wire.shown_text(holder, 60)
            raise RunLocked(
                f"{what} is being driven by another lf-bulk process ({holder}); "
                "wait for it to finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def exclusive_all(home: Path, names: list[str], what: str) -> Iterator[None]:
    """Several locks in a fixed order, so that two callers cannot deadlock each other."""
    with ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(exclusive(home, name, what))
        yield
