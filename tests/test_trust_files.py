"""Files under --home and report folders as an attack surface: modes, owners, symlinks, locks.

Tests run as root here, so "another user" is uid 65534 via os.chown, and "writable by others" is
a chmod; the tool must refuse both, with one line and exit 1, before anything is sent.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lf_bulk.errors import LfBulkError, RunLocked
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.locking import exclusive
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.sandbox.state import SandboxState

from clihelp import base_args, expect, invoke, write_list

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

NOBODY = 65534


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def one_line_exit_1(args: list[str]) -> str:
    result = expect(invoke(args), 1)
    # A job's own notices ("run <id>", the sandbox banner) may come first; the failure is one line.
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: "), result.stderr
    assert sum(line.startswith("Error") for line in lines) == 1, result.stderr
    assert len(lines) <= 2, result.stderr
    return result.stderr


# ------------------------------------------------------------------ the home and its folders


def test_home_and_locks_are_created_owner_only_under_a_permissive_umask(
    sandbox: SandboxServer, tmp_path: Path, permissive_umask: None
) -> None:
    home = tmp_path / "deep" / "home"
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(2))
    args = [*base_args(home, sandbox.base_url), "sims", "add", PILOT_GROUP, str(file)]
    expect(invoke([*args, "--report-dir", str(tmp_path / "r")]), 0)
    assert mode_of(home) == 0o700
    assert mode_of(home / "locks") == 0o700
    assert mode_of(home / "journal.db") == 0o600
    for lock in (home / "locks").iterdir():
        assert mode_of(lock) == 0o600, lock


def test_in_process_sandbox_home_is_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    home = tmp_path / "home"
    expect(invoke(["--home", str(home), "--no-progress", "groups", "list"]), 0)
    assert mode_of(home) == 0o700
    assert mode_of(home / "sandbox.db") == 0o600


def test_a_home_under_a_file_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    home = tmp_path / "plain-file" / "home"
    stderr = one_line_exit_1(["--home", str(home), "runs", "list"])
    assert str(home) in stderr and "--home" in stderr
    stderr = one_line_exit_1(["--home", str(home), "--no-progress", "groups", "list"])
    assert str(home) in stderr and "--home" in stderr


def test_a_home_of_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    stderr = one_line_exit_1(["--home", str(home), "runs", "list"])
    assert str(home) in stderr and "another user" in stderr
    assert not (home / "journal.db").exists()


def test_a_home_writable_by_others_is_made_private_before_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    expect(invoke(["--home", str(home), "runs", "list"]), 0)
    assert mode_of(home) == 0o700


# ------------------------------------------------------------------ journal and state files


def test_a_symlinked_journal_is_refused_and_its_target_not_created(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.db"
    (home / "journal.db").symlink_to(target)
    stderr = one_line_exit_1(["--home", str(home), "runs", "list"])
    assert "symbolic link" in stderr and str(home / "journal.db") in stderr
    assert not target.exists()


def test_a_symlinked_journal_wal_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    expect(invoke(["--home", str(home), "runs", "list"]), 0)
    Path(f"{home / 'journal.db'}-wal").unlink(missing_ok=True)
    Path(f"{home / 'journal.db'}-wal").symlink_to(tmp_path / "planted-wal")
    stderr = one_line_exit_1(["--home", str(home), "runs", "list"])
    assert "symbolic link" in stderr


def test_a_journal_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    expect(invoke(["--home", str(home), "runs", "list"]), 0)
    os.chown(home / "journal.db", NOBODY, NOBODY)
    stderr = one_line_exit_1(["--home", str(home), "runs", "list"])
    assert str(home / "journal.db") in stderr and "another user" in stderr


def test_a_journal_writable_by_others_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    expect(invoke(["--home", str(home), "runs", "list"]), 0)
    (home / "journal.db").chmod(0o666)
    stderr = one_line_exit_1(["--home", str(home), "runs", "list"])
    assert "writable by other users" in stderr


def test_a_planted_journal_in_a_shared_home_is_refused_by_runs_resume(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Another user plants a journal whose run removes a whole group: nothing is sent."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    victims = sandbox.state.members(PILOT_GROUP)
    with Journal(home / "journal.db") as planted:
        run_id = planted.create_run(
            kind="sims",
            operation="REMOVE",
            group_id=PILOT_GROUP,
            items=[PlannedItem(n, i, "REMOVE", PILOT_GROUP) for n, i in enumerate(victims, 2)],
            batch_size=500,
            report_dir=str(tmp_path / "r"),
        )
    for name in os.listdir(home):
        os.chown(home / name, NOBODY, NOBODY)

    stderr = one_line_exit_1([*base_args(home, sandbox.base_url), "runs", "resume", run_id])

    assert "another user" in stderr
    assert sandbox.state.mutation_log() == []
    assert sandbox.state.members(PILOT_GROUP) == victims


def test_a_symlinked_sandbox_state_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "private.txt"
    target.write_text("mine")
    (home / "sandbox.db").symlink_to(target)
    stderr = one_line_exit_1(["--home", str(home), "--no-progress", "groups", "list"])
    assert "symbolic link" in stderr
    assert target.read_text() == "mine"


def test_sandbox_state_refuses_symlinks_foreign_owners_and_foreign_databases(
    tmp_path: Path,
) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "nowhere.db")
    with pytest.raises(LfBulkError, match="symbolic link"):
        SandboxState(link, sims=100)
    assert not (tmp_path / "nowhere.db").exists()

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    foreign.chmod(0o600)
    with pytest.raises(LfBulkError, match="not an lf-bulk sandbox state"):
        SandboxState(foreign, sims=100)

    theirs = tmp_path / "theirs.db"
    SandboxState(theirs, sims=100).close()
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(LfBulkError, match="another user"):
        SandboxState(theirs, sims=100)


def test_sandbox_serve_refuses_a_symlinked_state_before_serving(tmp_path: Path) -> None:
    link = tmp_path / "state.db"
    link.symlink_to(tmp_path / "victim.db")
    stderr = one_line_exit_1(["sandbox", "serve", "--port", "0", "--state", str(link)])
    assert "symbolic link" in stderr
    assert not (tmp_path / "victim.db").exists()


# ------------------------------------------------------------------ locks


def test_a_lock_message_names_the_run_and_the_pid(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with (
        exclusive(home, "run-R1", "run R1", holder="run R1"),
        pytest.raises(RunLocked) as caught,
        exclusive(home, "run-R1", "run R1"),
    ):
        pass
    message = str(caught.value)
    assert "run R1" in message and f"pid {os.getpid()}" in message


def test_a_planted_lock_symlink_truncates_nothing(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    with Journal(home / "journal.db") as journal:
        run_id = journal.create_run(
            kind="sims",
            operation="ADD",
            group_id=PILOT_GROUP,
            items=[PlannedItem(2, sandbox.state.ungrouped_sims(1)[0], "ADD", PILOT_GROUP)],
            batch_size=10,
            report_dir=str(tmp_path / "r"),
        )
    private = tmp_path / "private.key"
    private.write_text("secret key material")
    (home / "locks").mkdir(mode=0o700)
    (home / "locks" / f"run-{run_id}.lock").symlink_to(private)

    stderr = one_line_exit_1([*base_args(home, sandbox.base_url), "runs", "resume", run_id])

    assert "symbolic link" in stderr
    assert private.read_text() == "secret key material"
    assert sandbox.state.mutation_log() == []


def test_a_lock_file_owned_by_another_user_is_one_line_exit_1(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    with Journal(home / "journal.db") as journal:
        run_id = journal.create_run(
            kind="sims",
            operation="ADD",
            group_id=PILOT_GROUP,
            items=[PlannedItem(2, sandbox.state.ungrouped_sims(1)[0], "ADD", PILOT_GROUP)],
            batch_size=10,
            report_dir=str(tmp_path / "r"),
        )
    (home / "locks").mkdir(mode=0o700)
    lock = home / "locks" / f"run-{run_id}.lock"
    lock.write_text("pid 1")
    os.chown(lock, NOBODY, NOBODY)

    stderr = one_line_exit_1([*base_args(home, sandbox.base_url), "runs", "resume", run_id])

    assert str(lock) in stderr and "another user" in stderr
    assert sandbox.state.mutation_log() == []


# ------------------------------------------------------------------ reports


def test_reconcile_reports_replace_planted_symlinks_instead_of_writing_through(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    report = tmp_path / "r"
    report.mkdir()
    victims = {}
    for name in ("drift.csv", "summary.json", "report.xlsx"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (report / name).symlink_to(victim)
        victims[name] = victim
    desired = write_list(tmp_path / "d.csv", sandbox.state.ungrouped_sims(3))
    args = [*base_args(tmp_path / "home", sandbox.base_url), "reconcile", str(desired)]
    expect(invoke([*args, "--group", PILOT_GROUP, "--report-dir", str(report)]), 4)

    for name, victim in victims.items():
        assert victim.read_text() == "precious", name
        assert not (report / name).is_symlink(), name
        assert (report / name).stat().st_size > 0


def test_an_unversioned_sandbox_state_is_adopted_with_its_world(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SandboxState(path, sims=100) as state:
        ungrouped = state.ungrouped_sims(3)
    with sqlite3.connect(path) as db:  # as lf-bulk 0.1.0 left it: no application id, version 0
        db.execute("PRAGMA application_id = 0")
        db.execute("PRAGMA user_version = 0")
    db.close()

    with SandboxState(path, sims=100) as state:
        assert state.ungrouped_sims(3) == ungrouped
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] != 0
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


def test_a_lock_holders_text_is_shown_as_one_short_printable_line(tmp_path: Path) -> None:
    import fcntl

    home = tmp_path / "home"
    with exclusive(home, "run-R2", "run R2"):
        pass
    lock = home / "locks" / "run-R2.lock"
    lock.write_bytes(b"\x1b[2J\x1b]0;owned\x07run X\nError: fake line" + b"A" * 5000)
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(RunLocked) as caught, exclusive(home, "run-R2", "run R2"):
            pass
    finally:
        os.close(fd)
    message = str(caught.value)
    assert "\x1b" not in message and "\n" not in message and "\x07" not in message
    assert len(message) < 400
