"""The journal as a file the tool must not trust: schema versions, migrations, foreign or planted
databases, and runs whose batches or items were edited behind the tool's back."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from lf_bulk import journal as journal_module
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import InputCounts
from lf_bulk.sandbox.seed import DEMO_GROUP, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke, read_items

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

FIXTURE = Path(__file__).parent / "fixtures" / "journal-v0.1.0.db"
FIXTURE_RUN = "20260102-000000-0002"


def header(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        user_version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    return application_id, user_version


def private_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    return home


def copy_fixture(home: Path) -> Path:
    target = home / "journal.db"
    shutil.copyfile(FIXTURE, target)
    target.chmod(0o600)
    return target


# ------------------------------------------------------------------ versions and migrations


def test_v0_1_0_journal_is_migrated_and_its_run_resumes_to_a_correct_end(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = private_home(tmp_path)
    path = copy_fixture(home)
    assert header(path) == (0, 0)
    report = tmp_path / "report"
    # The fixture's run recorded no report folder; point it at tmp_path, not the cwd (before the
    # migration, which seals the run as it finds it).
    tamper(home, f"UPDATE runs SET report_dir = '{report}' WHERE run_id = '{FIXTURE_RUN}'")
    assert header(path) == (0, 0)
    before = set(sandbox.state.members(PILOT_GROUP))

    result = expect(invoke([*base_args(home, sandbox.base_url), "runs", "resume", FIXTURE_RUN]), 0)

    assert header(path) == (journal_module.APPLICATION_ID, journal_module.SCHEMA_VERSION)
    assert result.stdout.strip() == str(report)
    items = read_items(report)
    assert [i["row"] for i in items] == [str(r) for r in range(2, 15)]
    assert Counter(i["outcome"] for i in items) == {"added": 12, "invalid": 1}
    wanted = {i["iccid"] for i in items if i["outcome"] == "added"}
    assert set(sandbox.state.members(PILOT_GROUP)) == before | wanted
    # The planned batch and the lost ones were each sent once; nothing went anywhere else.
    sent = [m for m in sandbox.state.mutation_log() if m.request_id]
    assert {m.group_id for m in sent} == {PILOT_GROUP}
    assert sorted(i for m in sent for i in m.iccids) == sorted(wanted)
    with Journal(path) as journal:
        assert journal.run("20260101-000000-0001").status == "finished"


def test_a_fresh_journal_carries_the_application_id_and_schema_version(tmp_path: Path) -> None:
    home = private_home(tmp_path)
    expect(invoke(["--home", str(home), "runs", "list"]), 0)
    assert header(home / "journal.db") == (
        journal_module.APPLICATION_ID,
        journal_module.SCHEMA_VERSION,
    )


def test_a_journal_newer_than_the_code_is_a_clear_error(tmp_path: Path) -> None:
    home = private_home(tmp_path)
    expect(invoke(["--home", str(home), "runs", "list"]), 0)
    with sqlite3.connect(home / "journal.db") as db:
        db.execute(f"PRAGMA user_version = {journal_module.SCHEMA_VERSION + 1}")
    db.close()

    result = expect(invoke(["--home", str(home), "runs", "list"]), 1)

    assert str(home / "journal.db") in result.stderr
    assert "newer" in result.stderr and "upgrade" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_foreign_sqlite_file_is_not_accepted_as_a_journal_nor_changed(tmp_path: Path) -> None:
    home = private_home(tmp_path)
    path = home / "journal.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (name TEXT)")
        db.execute("INSERT INTO photos VALUES ('cat.jpg')")
    db.close()
    path.chmod(0o600)
    before = path.read_bytes()

    result = expect(invoke(["--home", str(home), "runs", "list"]), 1)

    assert str(path) in result.stderr and "not an lf-bulk journal" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def test_a_database_of_another_application_is_refused(tmp_path: Path) -> None:
    home = private_home(tmp_path)
    path = home / "journal.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id = 12345")
    db.close()
    path.chmod(0o600)

    result = expect(invoke(["--home", str(home), "runs", "list"]), 1)

    assert "not an lf-bulk journal" in result.stderr


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    home = private_home(tmp_path)
    path = home / "journal.db"
    path.write_bytes(b"this is not SQLite at all" * 100)
    path.chmod(0o600)

    result = expect(invoke(["--home", str(home), "runs", "list"]), 1)

    assert str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_sandbox_state_file_is_not_a_journal(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = private_home(tmp_path)
    with (
        sqlite3.connect(sandbox.state.path) as source,
        sqlite3.connect(home / "journal.db") as copy,
    ):
        source.backup(copy)
    source.close()
    copy.close()
    (home / "journal.db").chmod(0o600)

    result = expect(invoke(["--home", str(home), "runs", "list"]), 1)

    assert "not an lf-bulk journal" in result.stderr


# ------------------------------------------------------------------ runs edited behind our back


def unfinished_run(home: Path, sandbox: SandboxServer, report: Path) -> tuple[str, list[str]]:
    iccids = sandbox.state.ungrouped_sims(6)
    with Journal(home / "journal.db") as journal:
        items = [PlannedItem(row, i, "ADD", PILOT_GROUP) for row, i in enumerate(iccids, 2)]
        items.append(
            PlannedItem(8, "89440000", "ADD", PILOT_GROUP, outcome="invalid", reason_code="x")
        )
        run_id = journal.create_run(
            kind="sims",
            operation="ADD",
            group_id=PILOT_GROUP,
            items=items,
            batch_size=3,
            report_dir=str(report),
            counts=InputCounts(7, 6, 1, 0),
        )
        journal.set_run_status(run_id, "not_finished", 5)
    return run_id, iccids


def tamper(home: Path, *statements: str) -> None:
    with sqlite3.connect(home / "journal.db") as db:
        for statement in statements:
            db.execute(statement)
    db.close()


def resume_refused(home: Path, sandbox: SandboxServer, run_id: str) -> str:
    result = expect(invoke([*base_args(home, sandbox.base_url), "runs", "resume", run_id]), 1)
    assert f"run {run_id}" in result.stderr
    assert "nothing was sent" in result.stderr
    assert sandbox.state.mutation_log() == []
    return result.stderr


def test_an_untouched_run_passes_verification_and_resumes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = private_home(tmp_path)
    run_id, iccids = unfinished_run(home, sandbox, tmp_path / "r")
    with Journal(home / "journal.db") as journal:
        journal.verify_run(run_id)
    expect(invoke([*base_args(home, sandbox.base_url), "runs", "resume", run_id]), 0)
    assert set(iccids) <= set(sandbox.state.members(PILOT_GROUP))


def test_a_batch_turned_into_a_remove_from_another_group_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    members = sandbox.state.members(DEMO_GROUP)[:3]
    tamper(
        home,
        f"UPDATE batches SET operation = 'REMOVE', group_id = '{DEMO_GROUP}'"
        f" WHERE run_id = '{run_id}' AND batch_id = 1",
        f"UPDATE items SET operation = 'REMOVE', group_id = '{DEMO_GROUP}'"
        f" WHERE run_id = '{run_id}' AND batch_id = 1",
        *(
            f"UPDATE items SET iccid = '{iccid}' WHERE run_id = '{run_id}' AND item_id = {n}"
            for n, iccid in enumerate(members)
        ),
    )
    resume_refused(home, sandbox, run_id)
    assert set(members) <= set(sandbox.state.members(DEMO_GROUP))


def test_a_batch_whose_group_was_edited_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    tamper(home, f"UPDATE batches SET group_id = '{DEMO_GROUP}' WHERE run_id = '{run_id}'")
    stderr = resume_refused(home, sandbox, run_id)
    assert "batch" in stderr


def test_a_run_whose_report_folder_was_redirected_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    elsewhere = tmp_path / "somebody-elses-folder"
    tamper(home, f"UPDATE runs SET report_dir = '{elsewhere}' WHERE run_id = '{run_id}'")
    resume_refused(home, sandbox, run_id)
    assert not elsewhere.exists()


def test_a_run_whose_group_was_edited_everywhere_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    tamper(
        home,
        f"UPDATE runs SET group_id = '{DEMO_GROUP}' WHERE run_id = '{run_id}'",
        f"UPDATE batches SET group_id = '{DEMO_GROUP}' WHERE run_id = '{run_id}'",
        f"UPDATE items SET group_id = '{DEMO_GROUP}' WHERE run_id = '{run_id}'",
    )
    resume_refused(home, sandbox, run_id)


def test_an_invalid_row_made_sendable_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    tamper(
        home,
        f"UPDATE items SET outcome = NULL, batch_id = 2 WHERE run_id = '{run_id}' AND item_id = 6",
    )
    resume_refused(home, sandbox, run_id)


def test_a_planted_item_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    stranger = sandbox.state.members(DEMO_GROUP)[0]
    tamper(
        home,
        "INSERT INTO items (run_id, item_id, row, iccid, operation, group_id, phase, batch_id)"
        f" VALUES ('{run_id}', 99, 99, '{stranger}', 'ADD', '{PILOT_GROUP}', 0, 1)",
    )
    resume_refused(home, sandbox, run_id)


def test_a_planted_run_without_a_digest_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    tamper(home, f"UPDATE runs SET details = '{{}}' WHERE run_id = '{run_id}'")
    resume_refused(home, sandbox, run_id)


def test_verify_run_is_a_typed_error_naming_the_run(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    tamper(home, f"UPDATE batches SET operation = 'REMOVE' WHERE run_id = '{run_id}'")
    from lf_bulk.errors import JournalError

    with Journal(home / "journal.db") as journal, pytest.raises(JournalError) as caught:
        journal.verify_run(run_id)
    assert run_id in str(caught.value)


def test_run_details_that_are_not_json_are_refused_not_a_traceback(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    tamper(home, f"UPDATE runs SET details = '{{not json' WHERE run_id = '{run_id}'")
    expect(invoke(["--home", str(home), "runs", "list"]), 0)
    resume_refused(home, sandbox, run_id)


def test_runs_retry_verifies_the_run_before_requeueing_anything(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = private_home(tmp_path)
    run_id, _ = unfinished_run(home, sandbox, tmp_path / "r")
    tamper(
        home,
        f"UPDATE runs SET status = 'finished' WHERE run_id = '{run_id}'",
        f"UPDATE items SET outcome = 'failed', reason_code = 'INTERNAL', group_id = '{DEMO_GROUP}'"
        f" WHERE run_id = '{run_id}'",
    )
    result = expect(invoke([*base_args(home, sandbox.base_url), "runs", "retry", run_id]), 1)
    assert "nothing was sent" in result.stderr
    assert sandbox.state.mutation_log() == []
    with Journal(home / "journal.db") as journal:
        assert journal.run(run_id).status == "finished"
