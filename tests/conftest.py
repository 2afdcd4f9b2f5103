"""Fixtures shared by the test modules."""

from __future__ import annotations

import gc
import importlib.util
import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import hypothesis
import pytest

from lf_bulk.sandbox.seed import World, build_world
from lf_bulk.sandbox.server import SandboxServer, running_sandbox
from lf_bulk.sandbox.state import SandboxState
from lf_bulk.store import Store

# A small world (group sizes scale down with it) whose operations finish in about 0.1 s.
SANDBOX_TEST_SIMS = 2_000
SANDBOX_TEST_FAULTS = "async=50-150ms"

# The console's browser tests (tests/e2e) save a screenshot of every page here, for review.
E2E_SCREENS = Path(
    os.environ.get("LF_BULK_E2E_SCREENS") or Path(__file__).resolve().parent.parent / "e2e-screens"
)
SESSION_STARTED = time.time()

# Hypothesis: no deadline (five workers share two cores, so an example's time says nothing about
# the code) and 50 examples a property in `make test`, which the two-minute suite can afford
# (100, Hypothesis's own number, cost it 4 s of CPU more); `make chaos` runs every property again
# with 1,000 (`--hypothesis-profile=thorough`, the `property` marker below).
hypothesis.settings.register_profile("suite", deadline=None, max_examples=50)
hypothesis.settings.register_profile("thorough", deadline=None, max_examples=1_000)
hypothesis.settings.load_profile("suite")

# `make install` adds Selenium apart from the extras (see the Makefile). An environment made
# otherwise runs all but the browser tests, except in CI, where their import error fails the run.
if importlib.util.find_spec("selenium") is None and os.environ.get("CI", "").lower() not in {
    "1", "true", "yes",
}:  # fmt: skip
    collect_ignore = ["e2e"]

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


@pytest.fixture(scope="session", autouse=True)
def worlds_seeded_once_per_session() -> Iterator[None]:
    """Each size of sandbox world (150,000 SIMs, the embedded sandbox's, take about 3.5 s of CPU
    to seed) seeded by one process of the session, not by each xdist worker (`share_world`)."""
    from lf_bulk.sandbox import state as sandbox_state

    seed_as_usual = sandbox_state._world_template
    # The session's folder, shared by its workers (read now: some tests clear LF_BULK_* variables).
    folder = Path(os.environ[PG_SESSION_DIR])

    def shared_template(sims: int) -> str:
        if sims not in sandbox_state._world_templates:
            share_world(sims, folder, seed_as_usual)
        return seed_as_usual(sims)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox_state, "_world_template", shared_template)
        yield


def share_world(sims: int, folder: Path, seed_as_usual: Callable[[int], str] | None = None) -> None:
    """Make this process's template of the world of `sims` SIMs (which every new sandbox state
    file is copied from): the first process to get here seeds it as usual and saves a copy in
    `folder`; the others load that copy (milliseconds) instead of seeding (seconds).
    `seed_as_usual`: the library's own seeding, when its module's name now leads here."""
    import fcntl
    import sqlite3
    import uuid

    from lf_bulk.sandbox import state as sandbox_state

    seed_as_usual = seed_as_usual or sandbox_state._world_template

    saved = folder / f"world-{sims}.db"
    with (folder / f"world-{sims}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not saved.exists():
            seed_as_usual(sims)
            _uri, keeper = sandbox_state._world_templates[sims]
            partial = saved.with_suffix(".partial")
            copy = sqlite3.connect(partial)
            keeper.backup(copy)
            copy.close()
            partial.rename(saved)
            return
        uri = f"file:lf-bulk-world-{uuid.uuid4().hex}-{sims}?mode=memory&cache=shared"
        keeper = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        source = sqlite3.connect(saved)
        source.backup(keeper)
        source.close()
        with sandbox_state._world_templates_lock:
            sandbox_state._world_templates.setdefault(sims, (uri, keeper))


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


# The engine's own waits, scaled to the test sandbox's operations (0.05-0.15 s, at most 2 s in a
# fault cell) instead of a real server's seconds. The lost-send window stays longer than any
# operation of the default suite's sandboxes: a shorter one would re-send what the server took,
# which the fault and crash tests catch in the server's log.
QUICK_ENGINE = {"first_poll": 0.2, "retry_delay": 0.25}
QUICK_ASYNC_WINDOW = 3.0


@pytest.fixture
def quick_engine(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Every engine this test drives in-process (CLI, library, console) polls first after 0.2 s
    and retries a failed SIM after 0.25 s, not 1 s and 2 s; a lost answer is settled after 3 s
    when no duration was learned yet, not 10 s. A module whose promise is not about the engine's
    timing opts in (`pytestmark = pytest.mark.usefixtures("quick_engine")`); `make chaos` keeps
    the real defaults. Subprocesses keep them too."""
    import dataclasses

    from lf_bulk import engine

    driver_init = engine.RunDriver.__init__

    def quick_init(driver: engine.RunDriver, *args: Any, **kwargs: Any) -> None:
        driver_init(driver, *args, **kwargs)
        quicker = {
            name: min(getattr(driver.options, name), seconds)
            for name, seconds in QUICK_ENGINE.items()
        }
        driver.options = dataclasses.replace(driver.options, **quicker)

    monkeypatch.setattr(engine.RunDriver, "__init__", quick_init)
    monkeypatch.setattr(engine, "DEFAULT_ASYNC_WINDOW", QUICK_ASYNC_WINDOW)
    return {**QUICK_ENGINE, "async_window": QUICK_ASYNC_WINDOW}


@pytest.hookimpl(tryfirst=True)
def pytest_itemcollected(item: pytest.Item) -> None:
    if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        item.add_marker(pytest.mark.property)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.scheduling import long_poles_first

    # Set in xdist's workers (`make test`: --dist worksteal), where the order is decided.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        order = long_poles_first([item.nodeid for item in items], workers)
        items[:] = [items[i] for i in order]


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collecting imported (the library, pandas, Hypothesis, the test modules: about 200,000
    # objects) lives as long as the session does. Frozen, it is not walked again by every full
    # garbage collection of the run: 0.3 s each, 4 s of CPU a worker.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if E2E_SCREENS.is_dir() and any(
        shot.stat().st_mtime >= SESSION_STARTED for shot in E2E_SCREENS.glob("*.png")
    ):
        terminalreporter.write_line(f"console screenshots (not committed): {E2E_SCREENS}")


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
