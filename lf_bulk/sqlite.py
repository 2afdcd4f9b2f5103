"""Opening the tool's own SQLite files (the journal, the sandbox state) without trusting the disk.

Everything under `--home` may have been planted or edited by someone else when the folder was ever
shared, so a database is only used when:

- its folder is ours and not writable by other users (created 0700; an existing folder of ours
  that others could write to is made 0700 first, since its files are checked one by one below),
  is not reached through another user's symbolic link, and lies where nobody else can rename or
  replace it (every folder above it is ours or root's, and sticky when others may write to it);
- the file itself is opened without following a symbolic link on its last component
  (`O_NOFOLLOW`), is a regular file with no other name (hard link), is ours, and is not writable
  by other users; the same holds for SQLite's side files (`-wal`, `-shm`, `-journal`);
- its header says it is ours: `PRAGMA application_id` names the kind of file and
  `PRAGMA user_version` its schema version. A file newer than this code is refused; older ones are
  migrated in order; files made before versions existed (application id 0) are recognised by
  their tables and migrated like version 0. Any other database is refused untouched.

Connections run with `trusted_schema=OFF` (a planted view or trigger cannot call functions with
side effects) and WAL; `transaction()` is the one way to write.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lf_bulk.errors import DatabaseTooNew, ForeignDatabase, HomeError, UnsafeFile
from lf_bulk.files import make_missing_folders, prove_writable

SIDE_FILES = ("-wal", "-shm", "-journal")
BUSY_TIMEOUT_MS = 30_000

Migration = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class FileKind:
    """One kind of database the tool owns: how to recognise, create and upgrade it.

    `migrations[n]` brings a file from version n to n + 1 (version 0: a file made before schema
    versions existed, which `is_legacy` recognises by its tables); `create` makes the current
    schema in an empty file. Both run inside the opening transaction.
    """

    name: str  # "journal", "sandbox state": used in messages
    application_id: int
    version: int
    create: Migration
    migrations: Sequence[Migration]
    is_legacy: Callable[[sqlite3.Connection], bool]

    def __post_init__(self) -> None:
        assert len(self.migrations) == self.version, "one migration per version step"


def ensure_private_dir(path: Path, *, what: str = "--home") -> Path:
    """Create `path` (and missing parents) owner-only, or check an existing one is ours.

    An existing folder of ours that others may write to is made 0700; one that belongs to
    another user is refused. So is a folder reached through a symbolic link another user made,
    or lying under a folder where someone else could rename or replace it (one of another user,
    or one writable by others without the sticky bit): checking its files would prove nothing.
    Returns the folder's real path (links resolved), which callers use from then on, so a link
    swapped later changes nothing. Raises `HomeError` naming the folder and what to do.
    """
    path = Path(path).absolute()
    try:
        existing = next(p for p in (path, *path.parents) if os.path.lexists(p))
        if existing != path:  # check the way before creating anything along it
            _trusted_route(existing, what, shown=path, itself=True)
        make_missing_folders(path, mode=0o700)
        real = _trusted_route(path, what, shown=path)
        info = os.stat(real)
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        if info.st_uid != os.geteuid():
            raise HomeError(
                f"the folder {path} belongs to another user (uid {info.st_uid}); use a folder "
                f"of your own with {what}"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(real, 0o700)
        prove_writable(real)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HomeError(
            f"the folder {path} cannot be used ({reason}); make it writable, or choose another "
            f"with {what}"
        ) from None
    return real


def _trusted_route(path: Path, what: str, *, shown: Path, itself: bool = False) -> Path:
    """The real path of `path`, after checking nobody else could have chosen or can change it.

    `itself`: `path` is a parent of the folder `shown` (named in messages), checked like the
    other parents.
    """
    trusted = {0, os.geteuid()}
    link = foreign_link(path)
    if link is not None:
        raise HomeError(
            f"the folder {shown} is reached through {link[0]}, a symbolic link made by another "
            f"user (uid {link[1]}); lf-bulk does not follow it. Remove the link (and check who "
            f"made it), or choose another folder with {what}"
        )
    real = Path(os.path.realpath(path))
    for folder in (real, *real.parents) if itself else real.parents:
        info = os.stat(folder)
        if info.st_uid not in trusted:
            raise HomeError(
                f"the folder {shown} lies in {folder}, which belongs to another user (uid "
                f"{info.st_uid}) who could replace it; choose a folder of your own with {what}"
            )
        if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
            raise HomeError(
                f"the folder {shown} lies in {folder}, which is writable by other users (and not "
                f"sticky like /tmp), so they could replace it; choose another folder with {what}"
            )
    return real


def foreign_link(path: Path) -> tuple[Path, int] | None:
    """The first symbolic link on the way to `path` made by someone else (not us, not root), with
    its owner; None when there is none. Another user's link decides where a name leads."""
    trusted = {0, os.geteuid()}
    path = Path(path).absolute()
    walked = Path(path.anchor)
    for part in path.parts[1:]:
        walked = walked / part
        try:
            info = os.lstat(walked)
        except OSError:
            return None  # the rest does not exist (yet) or cannot be reached: using it will fail
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in trusted:
                return walked, info.st_uid
            walked = Path(os.path.realpath(walked))
    return None


def open_private_file(path: Path, flags: int, *, what: str) -> int:
    """Open (creating owner-only) a file of ours under a private folder; return the descriptor.

    Refuses a symbolic link, anything but a regular file, a file of another user, and one that
    others may write to (a file merely readable by others is made 0600).
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(
                f"{what} {path} is a symbolic link; lf-bulk does not follow links under its home. "
                "Remove the link (and check who made it)"
            ) from None
        raise HomeError(
            f"{what} {path} cannot be opened ({exc.strerror or exc}); check the folder, or "
            "choose another with --home"
        ) from None
    try:
        check_owned(path, os.fstat(fd), what=what)
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_owned(path: Path, info: os.stat_result, *, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(f"{what} {path} is not a regular file; remove it (and check who made it)")
    if info.st_uid != os.geteuid():
        raise UnsafeFile(
            f"{what} {path} belongs to another user (uid {info.st_uid}); lf-bulk only uses its "
            "own files. Remove it (and check who made it), or choose another --home"
        )
    if info.st_nlink != 1:
        # Another name (a hard link) elsewhere: whoever made it chose which file this is.
        raise UnsafeFile(
            f"{what} {path} has other names (hard links) elsewhere, so it may be another file "
            "of yours; lf-bulk only uses files it made. Remove this name (and check who made it)"
        )
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise UnsafeFile(
            f"{what} {path} is writable by other users, so it may have been changed; check it, "
            "then `chmod 600` it, or remove it"
        )


def _check_side_files(path: Path, what: str) -> None:
    for suffix in SIDE_FILES:
        side = Path(f"{path}{suffix}")
        try:
            info = os.lstat(side)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            raise UnsafeFile(
                f"{what} {side} is a symbolic link; lf-bulk does not follow links under its home. "
                "Remove the link (and check who made it)"
            )
        check_owned(side, info, what=what)


class _Connection(sqlite3.Connection):
    """A connection that says when it was closed (see `_hold`)."""

    is_closed = False

    def close(self) -> None:
        super().close()
        self.is_closed = True


@dataclass
class _Held:
    descriptors: list[int]
    users: list[weakref.ref[_Connection]]


_held: dict[tuple[int, int], _Held] = {}
_held_lock = threading.Lock()


def _hold(fd: int, opened: os.stat_result, db: _Connection | None) -> None:
    """Keep `fd` open while a connection of this process uses the file.

    POSIX record locks belong to the process: closing any descriptor of a file drops all of the
    process's locks on it, SQLite's included. Closed at once, the descriptor this module opens to
    check the file would leave another connection of the process (the console's threads) without
    its locks, and the next process to close the file would delete the write-ahead log under it
    ("database disk image is malformed"). Descriptors are closed once no connection uses the file.
    """
    with _held_lock:
        held = _held.setdefault((opened.st_dev, opened.st_ino), _Held([], []))
        held.descriptors.append(fd)
        if db is not None:
            held.users.append(weakref.ref(db))
        for key, entry in list(_held.items()):
            entry.users = [user for user in entry.users if _in_use(user)]
            if not entry.users:
                for descriptor in entry.descriptors:
                    os.close(descriptor)
                del _held[key]


def _in_use(user: weakref.ref[_Connection]) -> bool:
    db = user()
    return db is not None and not db.is_closed


def connect(
    path: Path, kind: FileKind, *, private_folder: bool = True, check_same_thread: bool = True
) -> sqlite3.Connection:
    """Open (or create) a database of `kind` at `path` under the checks of the module docstring.

    `private_folder=False` is for a file the user placed in a folder of their choosing (e.g.
    `sandbox serve --state`): missing folders are still created 0700, but an existing folder is
    left as it is (only another user's link on the way is refused); the file and its side files
    are checked all the same (SQLite itself does not follow a link at a side file's name).
    """
    path = Path(path).absolute()
    if private_folder:
        path = ensure_private_dir(path.parent) / path.name
    else:
        link = foreign_link(path.parent)
        if link is not None:
            raise HomeError(
                f"{kind.name} {path} is reached through {link[0]}, a symbolic link made by "
                f"another user (uid {link[1]}); lf-bulk does not follow it. Choose another path"
            )
        try:
            make_missing_folders(path.parent, mode=0o700)
        except OSError as exc:
            raise HomeError(
                f"the folder {path.parent} cannot be created ({exc.strerror or exc}); "
                "choose another"
            ) from None
    fd = open_private_file(path, os.O_RDWR, what=kind.name)
    opened = os.fstat(fd)
    db: _Connection | None = None
    try:
        _check_side_files(path, kind.name)
        try:
            db = sqlite3.connect(
                f"{path.as_uri()}?mode=rw",
                uri=True,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=check_same_thread,
                factory=_Connection,
            )
        except sqlite3.Error as exc:
            raise ForeignDatabase(f"{kind.name} {path} cannot be opened: {exc}") from None
        # The name must still lead to the file we checked (nobody swapped it in between).
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
            db.close()
            raise UnsafeFile(f"{kind.name} {path} was replaced while it was being opened")
    finally:
        _hold(fd, opened, db)
    try:
        _prepare(db, path, kind)
    except BaseException:
        db.close()
        raise
    return db


def _prepare(db: sqlite3.Connection, path: Path, kind: FileKind) -> None:
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA trusted_schema = OFF")
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            _prepare_once(db, path, kind)
            return
        except sqlite3.OperationalError as exc:
            # Switching a new file to WAL can meet another process doing the same; SQLite
            # then answers "locked" at once, without waiting on busy_timeout.
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise ForeignDatabase(
                    f"{kind.name} {path} is not a usable lf-bulk {kind.name} ({exc}); move it aside"
                ) from None
            if db.in_transaction:
                db.execute("ROLLBACK")
            time.sleep(0.02)


def _prepare_once(db: sqlite3.Connection, path: Path, kind: FileKind) -> None:
    try:
        # Recognise the file before changing anything in it (even its journal mode).
        _recognise(db, path, kind)
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        with transaction(db):
            _create_or_migrate(db, path, kind)
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        raise ForeignDatabase(
            f"{kind.name} {path} is not a usable lf-bulk {kind.name} ({exc}); move it aside"
        ) from None


def _header(db: sqlite3.Connection) -> tuple[int, int, int]:
    application_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = int(db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0])
    return application_id, version, tables


def _recognise(db: sqlite3.Connection, path: Path, kind: FileKind) -> int:
    """The file's schema version (-1: empty, to be created); raises for anything not ours."""
    if db.in_transaction:
        return _recognise_snapshot(db, path, kind)
    # One read transaction: another process may be creating the file right now, and the header
    # and the tables must be seen as of one moment.
    db.execute("BEGIN")
    try:
        return _recognise_snapshot(db, path, kind)
    finally:
        db.execute("COMMIT")


def _recognise_snapshot(db: sqlite3.Connection, path: Path, kind: FileKind) -> int:
    application_id, version, tables = _header(db)
    if application_id == kind.application_id:
        if version > kind.version:
            raise DatabaseTooNew(
                f"{kind.name} {path} has schema version {version}, newer than this lf-bulk "
                f"understands ({kind.version}); upgrade lf-bulk to use it"
            )
        return version
    if application_id == 0 and version == 0:
        if tables == 0:
            return -1
        if kind.is_legacy(db):
            return 0
    raise ForeignDatabase(
        f"{path} is not an lf-bulk {kind.name} (another application's database); move it aside "
        "or choose another --home"
    )


def _create_or_migrate(db: sqlite3.Connection, path: Path, kind: FileKind) -> None:
    # Again inside the write transaction: another process may have created it meanwhile.
    version = _recognise(db, path, kind)
    if version == kind.version:
        return
    if version < 0:
        kind.create(db)
    else:
        for migrate in kind.migrations[version:]:
            migrate(db)
    db.execute(f"PRAGMA application_id = {int(kind.application_id)}")
    db.execute(f"PRAGMA user_version = {int(kind.version)}")


def table_columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """An IMMEDIATE transaction (the write lock up front); nested calls join the outer one."""
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
