"""Fixtures shared by the test modules."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from lf_bulk.sandbox.seed import World, build_world
from lf_bulk.sandbox.server import SandboxServer, running_sandbox
from lf_bulk.sandbox.state import SandboxState
from lf_bulk.store import Store

# A small world (group sizes scale down with it) whose operations finish in about 0.1 s.
SANDBOX_TEST_SIMS = 2_000
SANDBOX_TEST_FAULTS = "async=50-150ms"

MakeSandbox = Callable[..., SandboxServer]
FreshWorld = Callable[[Path, int], Path]


@pytest.fixture(scope="session", autouse=True)
def scratch_working_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run the tests in a scratch folder: a job whose test forgot --report-dir or --home writes
    its default ./lf-bulk-reports or ./.lf-bulk there, never into the repository."""
    folder = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield folder


@pytest.fixture(scope="session")
def default_world() -> World:
    """The world a fresh sandbox starts with at the default size, built once: read it only."""
    return build_world()


@pytest.fixture(scope="session")
def fresh_world(tmp_path_factory: pytest.TempPathFactory) -> FreshWorld:
    """Put a freshly seeded state file of `sims` SIMs at a path (unless one is there already).

    Seeding is deterministic, so each size is seeded once per session and copied after that: a
    copy takes a millisecond, seeding 20,000 SIMs half a second.
    """
    folder = tmp_path_factory.mktemp("seeded-worlds")

    def put(path: Path, sims: int) -> Path:
        if not path.exists():
            template = folder / f"world-{sims}.db"
            if not template.exists():
                SandboxState(template, sims=sims).close()
            shutil.copyfile(template, path)
            os.chmod(path, 0o600)
        return path

    return put


@pytest.fixture
def sandbox(tmp_path: Path, fresh_world: FreshWorld) -> Iterator[SandboxServer]:
    """A running sandbox on 127.0.0.1 with a fresh state and the contract's rate limits."""
    path = fresh_world(tmp_path / "sandbox.db", SANDBOX_TEST_SIMS)
    with running_sandbox(path, SANDBOX_TEST_FAULTS, sims=SANDBOX_TEST_SIMS) as server:
        yield server


@pytest.fixture
def make_sandbox(tmp_path: Path, fresh_world: FreshWorld) -> Iterator[MakeSandbox]:
    """Start sandboxes with extra faults: `make_sandbox("drop=1")`, stopped after the test.

    The faults are added to `SANDBOX_TEST_FAULTS` (a key given here wins). Each call gets a fresh
    state file unless `state_path` is given, which is how two servers share one world.
    """
    numbers = itertools.count(1)
    with ExitStack() as stack:

        def start(
            faults: str = "", *, state_path: Path | None = None, sims: int = SANDBOX_TEST_SIMS
        ) -> SandboxServer:
            path = state_path or fresh_world(tmp_path / f"sandbox-{next(numbers)}.db", sims)
            spec = ",".join(part for part in (SANDBOX_TEST_FAULTS, faults) if part)
            return stack.enter_context(running_sandbox(path, spec, sims=sims))

        yield start


# ---------------------------------------------------------------- stores (SQLite, PostgreSQL)

PG_SESSION_DIR = "LF_BULK_TEST_PG_DIR"


def pytest_configure(config: pytest.Config) -> None:
    # Set before xdist starts its workers, which inherit it: the folder where the first of them
    # starts the session's PostgreSQL and the others find its URL.
    if not hasattr(config, "workerinput") and PG_SESSION_DIR not in os.environ:
        import tempfile

        os.environ[PG_SESSION_DIR] = tempfile.mkdtemp(prefix="lf-bulk-pg-session-")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput") or PG_SESSION_DIR not in os.environ:
        return
    from tests import pgserver

    folder = Path(os.environ[PG_SESSION_DIR])
    pgserver.stop_session_cluster(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The URL of the session's throwaway PostgreSQL server (or LF_BULK_TEST_PG's)."""
    from tests import pgserver

    missing = not os.environ.get(pgserver.ENV_URL) and pgserver.server_binaries() is None
    if missing and not os.environ.get("CI"):
        pytest.skip("no PostgreSQL server binaries here (initdb): install `postgresql`")
    return pgserver.session_url(Path(os.environ[PG_SESSION_DIR]))


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A store URL of its own for one test: a fresh schema on the session's server."""
    from tests import pgserver

    url = pgserver.fresh_schema(pg_server)
    yield url
    pgserver.drop_schema(pg_server, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn: None (SQLite files in the test's home), then a fresh PostgreSQL
    schema."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def each_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Run a test on each store: its jobs (in process or not) and `storehelp.journal_at` use
    the SQLite files in their home, then a fresh PostgreSQL schema (through LF_BULK_STORE)."""
    from lf_bulk.store import ENV_VAR

    if request.param == "sqlite":
        monkeypatch.delenv(ENV_VAR, raising=False)
        return None
    url = str(request.getfixturevalue("pg_url"))
    monkeypatch.setenv(ENV_VAR, url)
    return url


@pytest.fixture
def store(store_url: str | None, tmp_path: Path) -> Iterator[Store]:
    """An open store of each kind in turn: the SQLite files in a fresh home, then PostgreSQL."""
    from lf_bulk.store import opened_store

    with opened_store(store_url, tmp_path / "store-home") as opened:
        yield opened
