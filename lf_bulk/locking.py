"""Advisory locks so that two processes never drive the same run (or reconcile the same groups).

flock is released by the kernel when a process dies, even by SIGKILL, so a crash never leaves a
stale lock behind.

Lock files live in `<home>/locks` (0700) and are opened like the tool's databases: never through a
symbolic link, only when they are ours and not writable by others (`lf_bulk.sqlite`). The holder
writes who it is ("run R (pid N)"); a waiting process reads that text, which is untrusted, so only
a short printable prefix of it is shown.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

from lf_bulk.errors import RunLocked
from lf_bulk.sqlite import ensure_private_dir, open_private_file

_HOLDER_LIMIT = 200


class LockProvider(Protocol):
    def lock(self, name: str, what: str, *, holder: str = "") -> AbstractContextManager[None]: ...

    def is_held(self, name: str) -> bool: ...


# A store other than the files in <home> (PostgreSQL) keeps the locks of the runs in its journal:
# while its journal is open, the locks of that home are taken there, by the same names. Bound per
# thread: a worker process may drive several runs at once, each holding its locks on its own
# store's connection (which its journal's guard checks, and whose closing frees only them).
_providers: dict[Path, list[tuple[int, LockProvider]]] = {}
_binding = threading.Lock()


def bind(home: Path, provider: LockProvider) -> None:
    with _binding:
        _providers.setdefault(Path(home).absolute(), []).append((threading.get_ident(), provider))


def unbind(home: Path, provider: LockProvider) -> None:
    with _binding:
        bound = _providers.get(Path(home).absolute(), [])
        bound[:] = [(t, p) for t, p in bound if p is not provider]


def _provider(home: Path) -> LockProvider | None:
    """This thread's latest store for `home`, else any thread's (to ask who holds a lock)."""
    with _binding:
        bound = _providers.get(Path(home).absolute(), [])
        mine = [p for t, p in bound if t == threading.get_ident()]
        if mine:
            return mine[-1]
        return bound[-1][1] if bound else None


def _lock_path(home: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    directory = ensure_private_dir(Path(home) / "locks")
    return directory / f"{safe}.lock"


def _holder_text(raw: bytes) -> str:
    text = raw[:_HOLDER_LIMIT].decode(errors="replace")
    return re.sub(r"[^\w .:,()/-]", "?", text).strip() or "unknown"


@contextmanager
def exclusive(home: Path, name: str, what: str, *, holder: str = "") -> Iterator[None]:
    """Hold the lock `name` while the block runs; `what` names the locked thing in the message,
    `holder` (e.g. "run R") is recorded with our pid for whoever finds the lock taken."""
    provider = _provider(home)
    if provider is not None:
        with provider.lock(name, what, holder=holder):
            yield
        return
    path = _lock_path(home, name)
    fd = open_private_file(path, os.O_RDWR, what="lock file")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found = _holder_text(os.pread(fd, _HOLDER_LIMIT, 0))
            raise RunLocked(
                f"{what} is being driven by another lf-bulk process ({found}); "
                "wait for it to finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        me = f"{holder} (pid {os.getpid()})" if holder else f"pid {os.getpid()}"
        os.pwrite(fd, me.encode(), 0)
        yield
    finally:
        os.close(fd)


def is_held(home: Path, name: str) -> bool:
    """Whether some process holds the lock now (a process that died holds nothing)."""
    provider = _provider(home)
    if provider is not None:
        return provider.is_held(name)
    path = home / "locks" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken just now
    return False


@contextmanager
def exclusive_all(home: Path, names: list[str], what: str, *, holder: str = "") -> Iterator[None]:
    """Several locks in a fixed order, so that two callers cannot deadlock each other."""
    with ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(exclusive(home, name, what, holder=holder))
        yield
