"""Second review of --home as an attack surface: links and folders another user controls.

Tests run as root, so "another user" is uid 65534: a link is made theirs with os.lchown, a
folder "writable by others" with a chmod. A home reached through a link another user made, or
under a folder others may rename things in, is refused with one line and exit 1, and nothing is
changed or created where the link pointed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lf_bulk.errors import HomeError
from lf_bulk.journal import Journal
from lf_bulk.locking import exclusive
from lf_bulk.sqlite import ensure_private_dir

from clihelp import expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

NOBODY = 65534


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def one_line_exit_1(args: list[str]) -> str:
    result = expect(invoke(args), 1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return result.stderr


def precious_folder(tmp_path: Path) -> Path:
    """A folder of the user's that an attacker would like lf-bulk to chmod or write into."""
    folder = tmp_path / "precious"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "keep").write_text("x")
    return folder


def plant_link(link: Path, target: Path) -> None:
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)


def test_a_home_that_is_another_users_link_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    precious = precious_folder(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    plant_link(shared / ".lf-bulk", precious)
    stderr = one_line_exit_1(["--home", str(shared / ".lf-bulk"), "runs", "list"])
    assert "symbolic link" in stderr and "another user" in stderr and "--home" in stderr
    assert mode_of(precious) == 0o755
    assert sorted(p.name for p in precious.iterdir()) == ["keep"]


def test_a_locks_folder_that_is_another_users_link_is_refused(tmp_path: Path) -> None:
    precious = precious_folder(tmp_path)
    home = ensure_private_dir(tmp_path / "home")
    plant_link(home / "locks", precious)
    with pytest.raises(HomeError, match="symbolic link"), exclusive(home, "run-x", "run x"):
        pass
    assert mode_of(precious) == 0o755
    assert sorted(p.name for p in precious.iterdir()) == ["keep"]


def test_a_home_under_a_folder_others_may_write_to_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # no sticky bit: anyone may rename or replace the home in it
    home = shared / ".lf-bulk"
    stderr = one_line_exit_1(["--home", str(home), "runs", "list"])
    assert str(shared) in stderr and "writable by other users" in stderr
    assert not home.exists()


def test_a_home_under_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(HomeError, match="belongs to another user"):
        ensure_private_dir(theirs / "home")
    assert not (theirs / "home").exists()


def test_a_home_under_a_sticky_shared_folder_and_through_own_links_is_fine(
    tmp_path: Path,
) -> None:
    sticky = tmp_path / "tmp-like"
    sticky.mkdir()
    sticky.chmod(0o1777)
    real = ensure_private_dir(sticky / "real-home")
    (tmp_path / "my-link").symlink_to(real)  # a link the user made is followed
    with Journal(tmp_path / "my-link" / "journal.db") as journal:
        assert journal.runs() == []
    assert (real / "journal.db").is_file()
    assert ensure_private_dir(tmp_path / "my-link") == real


def test_a_journal_with_another_name_elsewhere_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    # A hard link makes one of the user's files (here a world-readable one) appear as the
    # journal: lf-bulk must neither chmod it nor treat it as its own.
    home = ensure_private_dir(tmp_path / "home")
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's notes\n")
    victim.chmod(0o644)
    os.link(victim, home / "journal.db")
    with pytest.raises(HomeError, match="other names"):
        Journal(home / "journal.db")
    assert mode_of(victim) == 0o644
    assert victim.read_text() == "the user's notes\n"


def test_a_lock_file_with_another_name_elsewhere_is_not_truncated(tmp_path: Path) -> None:
    home = ensure_private_dir(tmp_path / "home")
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's notes\n")
    (home / "locks").mkdir(mode=0o700)
    os.link(victim, home / "locks" / "run-x.lock")
    with pytest.raises(HomeError, match="other names"), exclusive(home, "run-x", "run x"):
        pass
    assert victim.read_text() == "the user's notes\n"


def test_a_sandbox_state_reached_through_another_users_link_is_refused(tmp_path: Path) -> None:
    from lf_bulk.sandbox.state import SandboxState

    precious = precious_folder(tmp_path)
    plant_link(tmp_path / "shared-link", precious)
    with pytest.raises(HomeError, match="symbolic link made by another user"):
        SandboxState(tmp_path / "shared-link" / "sandbox.db", sims=100)
    assert sorted(p.name for p in precious.iterdir()) == ["keep"]


@pytest.mark.parametrize("name", ["journal.db", "journal.db-wal", "journal.db-shm"])
def test_a_fifo_in_place_of_the_journal_or_its_side_files_is_refused_without_hanging(
    tmp_path: Path, name: str
) -> None:
    home = ensure_private_dir(tmp_path / "home")
    if name != "journal.db":
        Journal(home / "journal.db").close()
    os.mkfifo(home / name, 0o600)
    with pytest.raises(HomeError, match="not a regular file"):
        Journal(home / "journal.db")


def test_a_fifo_in_place_of_a_lock_file_is_refused_without_hanging(tmp_path: Path) -> None:
    home = ensure_private_dir(tmp_path / "home")
    (home / "locks").mkdir(mode=0o700)
    os.mkfifo(home / "locks" / "run-x.lock", 0o600)
    with pytest.raises(HomeError, match="not a regular file"), exclusive(home, "run-x", "run x"):
        pass
