"""A throwaway PostgreSQL cluster for the tests: one per test session, shared by xdist workers.

The first process that needs it starts it (under a lock file in the session's shared temporary
folder) and writes its URL there; the others read the URL. The cluster listens on a Unix socket
only, in a folder of its own, with trust authentication and fsync off: nothing outside the test
session can reach it. The controlling pytest process stops it when the session ends
(`stop_session_cluster`). `LF_BULK_TEST_PG` names an existing server instead (nothing is started
or stopped then); each test gets a fresh database either way (`fresh_database`).

initdb refuses to run as root: as root (CI) the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

ENV_URL = "LF_BULK_TEST_PG"
URL_FILE = "lf-bulk-pg.url"
DATA_FILE = "lf-bulk-pg.data"
LOCK_FILE = "lf-bulk-pg.lock"
BINARY_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)
_numbers = itertools.count(1)


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when no PostgreSQL server is installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in map(Path, BINARY_DIRS):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _start(shared: Path) -> str:
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    # Not under pytest's folder: that one is private to root, and the server runs as postgres.
    top = Path(tempfile.mkdtemp(prefix="lf-bulk-pg-"))
    data, sockets = top / "data", top / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (top, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(top, 0o700)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True}
    subprocess.run(
        _as_server_user(
            [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale", "C"]
        ),
        **quiet,  # type: ignore[call-overload]
    )  # fmt: skip
    options = (
        f"-c listen_addresses='' -k {sockets} -c fsync=off -c synchronous_commit=off"
        " -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_server_user(
            [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-s",
             "-l", str(top / "server.log"), "start"]
        ),
        **quiet,  # type: ignore[call-overload]
    )  # fmt: skip
    (shared / DATA_FILE).write_text(str(data))
    return f"postgresql://postgres@/postgres?host={sockets}"


def session_url(shared: Path) -> str:
    """The URL of the session's server (started by the first caller); `shared` is the session's
    temporary folder common to every xdist worker."""
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    shared.mkdir(parents=True, exist_ok=True)
    with open(shared / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url_file = shared / URL_FILE
        if not url_file.exists():
            url_file.write_text(_start(shared))
        return url_file.read_text()


def stop_session_cluster(shared: Path) -> None:
    """Stop the server this session started, if it did (the controlling process calls this)."""
    data_file = shared / DATA_FILE
    if not data_file.exists():
        return
    data = Path(data_file.read_text())
    binaries = server_binaries()
    if binaries is not None:
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-s",
                             "stop"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    shutil.rmtree(data.parent, ignore_errors=True)
    data_file.unlink()
    (shared / URL_FILE).unlink(missing_ok=True)


def with_database(url: str, name: str) -> str:
    """`url` (a postgresql:// URL) pointing at database `name` instead."""
    return re.sub(r"^(postgres(?:ql)?://[^/?]*)/?[^?]*", rf"\1/{name}", url)


def fresh_database(url: str) -> str:
    """A new empty database on the server at `url`; returns its URL."""
    import psycopg

    name = f"t_{os.getpid()}_{next(_numbers)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY")
    return with_database(url, name)


def drop_database(url: str, dbname_url: str) -> None:
    import psycopg

    name = re.sub(r"^postgres(?:ql)?://[^/?]*/([^?]*).*$", r"\1", dbname_url)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fresh_schema(url: str) -> str:
    """A new empty schema on the server at `url`; returns a URL whose tables live there (its
    search_path). Much faster than a database per test; the store's advisory locks are keyed
    by schema, so tests in parallel never see each other's locks."""
    import psycopg

    name = f"t_{os.getpid()}_{next(_numbers)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{name}"


def drop_schema(url: str, schema_url: str) -> None:
    import psycopg

    name = schema_url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
