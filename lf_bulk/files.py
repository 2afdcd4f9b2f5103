"""Files and folders as every writer of this project makes them, and text safe in a spreadsheet.

    make_folders       a folder and its parents, never writable by others
    make_missing_folders  the same with a mode of the caller's (owner-only homes), no checks
    prove_writable     create and remove a probe file: can we write here?
    atomic_file        a UTF-8 text file that replaces its target only when complete
    atomic_binary      the same for bytes (the .xlsx writer)
    neutralise         text a spreadsheet would run as a formula, defused

Used by the CSV, JSON and .xlsx writers (`reports`, `reconcile`, `orders`, `xlsx`, `jobs.render`)
and by the home folder (`sqlite`).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, TextIO

__all__ = [
    "atomic_binary",
    "atomic_file",
    "make_folders",
    "make_missing_folders",
    "neutralise",
    "prove_writable",
]

# Text starting with one of these is a formula to a spreadsheet (the OWASP list).
_FORMULA_TRIGGERS = frozenset("=+-@\t\r")


def neutralise(value: str) -> str:
    """Defuse formula injection: prefix "'" to text a spreadsheet would read as a formula.

    Applies to text beginning with '=', '+', '-', '@', tab or carriage return (the OWASP list),
    for every text cell we write, in .xlsx and in CSV alike. Idempotent.
    """
    if value and value[0] in _FORMULA_TRIGGERS:
        return "'" + value
    return value


def make_folders(path: Path) -> Path:
    """Create the folder `path` and its missing parents, never writable by others (whatever the
    umask: under umask 0 they would be 0777, and anyone could swap the reports in them)."""
    path = Path(path)
    make_missing_folders(path, mode=0o755)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))
    return path


def make_missing_folders(path: Path, *, mode: int) -> None:
    """Create whichever of `path` and its parents do not exist yet, outermost first, with `mode`.

    Whatever is already there (a link included) is left alone for the caller to check; a folder
    made by someone else meanwhile is no error.
    """
    for folder in reversed([p for p in (path, *path.parents) if not os.path.lexists(p)]):
        with suppress(FileExistsError):
            os.mkdir(folder, mode)


def prove_writable(folder: Path) -> None:
    """Create and remove a file in `folder`; raise OSError when that cannot be done.

    The probe is created exclusively and never through a link, so it cannot touch a file that
    is already there.
    """
    probe = Path(folder) / f".lf-bulk-probe-{secrets.token_hex(6)}"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    os.unlink(probe)


@contextmanager
def atomic_file(path: Path, *, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text file that replaces `path` when the block succeeds (removed on error)."""
    with (
        _atomic(path) as descriptor,
        os.fdopen(descriptor, "w", encoding="utf-8", newline=newline, closefd=False) as out,
    ):
        yield out


@contextmanager
def atomic_binary(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` when the block succeeds (removed on error)."""
    with _atomic(path) as descriptor, os.fdopen(descriptor, "wb", closefd=False) as out:
        yield out


@contextmanager
def _atomic(path: Path) -> Iterator[int]:
    """A descriptor of a fresh temporary file next to `path` that replaces it on success.

    Everything is written through the descriptor that created the file (O_EXCL|O_NOFOLLOW), never
    by reopening its name: in a folder others may write to, the name can be swapped for a link to
    one of the user's files meanwhile (XlsxWriter reopens a file name, so it gets a file object).
    The file is created without write access for others whatever the umask, flushed to disk
    before the rename (after a crash `path` is the old file or the complete new one), and only
    renamed while its name still leads to it; the rename replaces whatever is at `path`, a planted
    link included, instead of writing through it.
    """
    path = Path(path)
    temp = _temp_name(path)
    descriptor = _create_temp(temp)
    try:
        try:
            yield descriptor
            os.fsync(descriptor)
            if not os.path.samestat(os.fstat(descriptor), os.lstat(temp)):
                raise FileExistsError(
                    errno.EEXIST, f"{temp} was replaced by someone else while it was written"
                )
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _create_temp(temp: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(temp, flags, 0o644)
