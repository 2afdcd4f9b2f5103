"""The console's home and runs pages over one embedded-sandbox world: runs started through the
library show up with their counts; Resume / Wait / Retry / Cancel drive them with the library's
own functions (never a second driver for a locked run); downloads only from an allow-list;
everything rendered escaped."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from consolehelp import TestClient, console_client, csrf_of, state_of

from lf_bulk import bulk, runs
from lf_bulk.console.state import ConsoleState
from lf_bulk.engine import EngineOptions, Progress
from lf_bulk.journal import FINISHED
from lf_bulk.locking import exclusive
from lf_bulk.models import Operation
from lf_bulk.sources import read_iccids

GROUP = "G1000001"
QUICK = EngineOptions(first_poll=0.1, max_poll_interval=0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One console (and sandbox) for the module: each test removes SIMs of its own."""
    with console_client(tmp_path_factory.mktemp("console"), engine=QUICK) as client:
        yield client


@pytest.fixture(scope="module")
def members(world: TestClient) -> Iterator[list[str]]:
    """The group's members, handed out five at a time (each test its own SIMs)."""
    found = state_of(world).client().list_members(GROUP)
    assert len(found) >= 40
    return iter([found[i : i + 5] for i in range(0, len(found), 5)])


class Crash(BaseException):
    """The process dies in the middle of a run (after its first batch was submitted)."""


@contextmanager
def crash_after_first_send(total: int) -> Iterator[Progress]:
    def boom(count: int) -> None:
        raise Crash

    yield Progress(submitted=boom)


def start_removal(
    state: ConsoleState,
    folder: Path,
    rows: list[str],
    options: EngineOptions = QUICK,
    *,
    progress: runs.ProgressFactory = runs.no_progress,
    skip_invalid: bool = False,
) -> str:
    """A removal run started with the library, as `lf-bulk sims remove` would; its id."""
    source = folder / "leavers.csv"
    source.write_text("iccid\n" + "".join(f"{row}\n" for row in rows))
    table = read_iccids(source)
    seen: list[str] = []
    with (
        state.job_session() as session,
        state.journal() as journal,
        runs.watching_runs(seen.append),
        suppress(Crash),
    ):
        runs.start(
            journal, session.client, state.settings, table, Operation.REMOVE, GROUP,
            options, report_dir=folder / "report", progress=progress, skip_invalid=skip_invalid,
        )  # fmt: skip
    assert seen, "the run never started"
    return seen[0]


def settle(client: TestClient, run_id: str, timeout: float = 20.0) -> str:
    """The run's page once the console no longer drives it."""
    deadline = time.monotonic() + timeout
    state = state_of(client)
    while state.runner.driving(run_id):
        assert time.monotonic() < deadline, "the run is still driven"
        time.sleep(0.05)
    return client.get(f"/runs/{run_id}").text


def shown_status(page: str) -> str:
    found = re.search(r'id="run-status"[^>]*>([^<]*)<', page)
    assert found, page
    return found.group(1)


def post(client: TestClient, path: str) -> object:
    return client.post(path, data={"csrf_token": csrf_of(client)})


def test_home_shows_the_groups_with_counts_and_plans_and_todays_quota(world: TestClient) -> None:
    page = world.get("/").text
    groups = page[page.index('id="groups"') :]
    groups = groups[: groups.index("</table>")]
    assert "G1000001" in groups and "G1000006" in groups
    assert "UK 1GB / 30 days" in groups  # a plan of the group
    quota = page[page.index('id="quota"') :]
    assert re.search(r'id="quota-used">\d', quota) and re.search(r'id="quota-left">[\d,]+', quota)


def test_a_run_started_with_the_library_shows_in_runs_and_home_with_its_counts(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    state = state_of(world)
    run_id = start_removal(state, tmp_path, next(members))
    listing = world.get("/runs").text
    row = listing[listing.index(f">{run_id}</a>") :].split("</tr>")[0]
    assert "REMOVE" in row and GROUP in row and FINISHED in row and "removed 5" in row
    assert f">{run_id}</a>" in world.get("/").text.split('id="recent-runs"')[1]
    assert f">{run_id}</a>" in world.get("/runs?status=finished").text
    assert f">{run_id}</a>" not in world.get("/runs?status=cancelled").text
    assert f">{run_id}</a>" not in world.get("/runs?kind=ADD").text


def test_a_finished_run_shows_its_result_chart_and_downloads(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    run_id = start_removal(state_of(world), tmp_path, next(members))
    page = world.get(f"/runs/{run_id}").text
    assert shown_status(page) == "finished"
    assert '<svg id="summary-chart"' in page and 'class="bar bar-removed"' in page
    outcomes = page[page.index('id="outcomes"') :].split("</table>")[0]
    assert re.search(r"<td>removed</td><td class=\"num\">5</td>", outcomes)
    downloads = page[page.index('id="downloads"') :].split("</ul>")[0]
    for name in ("items.csv", "report.xlsx", "summary.json"):
        assert f'download="{name}"' in downloads
    assert 'http-equiv="refresh"' not in page  # only while it is driven
    answer = world.get(f"/runs/{run_id}/files/items.csv")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith("attachment")
    assert answer.content == (tmp_path / "report" / "items.csv").read_bytes()


def test_downloads_are_only_the_allow_listed_report_files(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    run_id = start_removal(state_of(world), tmp_path, next(members))
    (tmp_path / "report" / "notes.txt").write_text("not a report")
    (tmp_path / "report" / "invalid.csv").symlink_to(tmp_path / "leavers.csv")
    for name in (
        "notes.txt",
        "invalid.csv",
        "journal.db",
        "..%2f..%2fjournal.db",
        "..%2fleavers.csv",
    ):
        answer = world.get(f"/runs/{run_id}/files/{name}")
        assert answer.status_code == 404, name
        assert "not a report" not in answer.text and "iccid" not in answer.text
    assert world.get(f"/runs/{run_id}/files/../../journal.db").status_code == 404


def test_resume_from_the_page_finishes_a_run_a_crash_left_behind(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    rows = next(members)
    run_id = start_removal(state_of(world), tmp_path, rows, progress=crash_after_first_send)
    page = world.get(f"/runs/{run_id}").text
    assert shown_status(page) == "interrupted"
    assert 'id="resume"' in page and 'id="retry"' not in page
    listed = world.get("/runs").text
    row = listed[listed.index(f">{run_id}</a>") :].split("</tr>")[0]
    assert f'action="/runs/{run_id}/resume"' in row and 'name="csrf_token"' in row
    answer = post(world, f"/runs/{run_id}/resume")
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert answer.headers["location"] == f"/runs/{run_id}"  # type: ignore[attr-defined]
    page = settle(world, run_id)
    assert shown_status(page) == "finished"
    with state_of(world).journal() as journal:
        assert journal.outcome_counts(run_id).get("removed") == len(rows)
    assert not set(rows) & set(state_of(world).client().list_members(GROUP))


def test_wait_from_the_page_finishes_a_run_submitted_without_waiting(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    run_id = start_removal(state_of(world), tmp_path, next(members), EngineOptions(wait=False))
    assert shown_status(world.get(f"/runs/{run_id}").text) == "not_finished"
    assert post(world, f"/runs/{run_id}/wait").status_code == 303  # type: ignore[attr-defined]
    assert shown_status(settle(world, run_id)) == "finished"


def test_a_locked_run_is_never_driven_by_the_console(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    state = state_of(world)
    run_id = start_removal(state, tmp_path, next(members), EngineOptions(wait=False))
    lock = bulk.run_lock_name(run_id)
    with exclusive(state.settings.home, lock, f"run {run_id}", holder="run by the test"):
        for action in ("resume", "wait", "cancel"):
            answer = post(world, f"/runs/{run_id}/{action}")
            assert answer.status_code == 409, action  # type: ignore[attr-defined]
            assert "being driven by another lf-bulk process" in answer.text  # type: ignore[attr-defined]
            assert "run by the test" in answer.text  # type: ignore[attr-defined]
        assert not state.runner.driving(run_id)
    with state.journal() as journal:
        assert journal.run(run_id).status == "not_finished"
    post(world, f"/runs/{run_id}/resume")
    assert shown_status(settle(world, run_id)) == "finished"


def test_cancel_from_the_page_cancels_for_good(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    run_id = start_removal(state_of(world), tmp_path, next(members), EngineOptions(wait=False))
    assert post(world, f"/runs/{run_id}/cancel").status_code == 303  # type: ignore[attr-defined]
    page = world.get(f"/runs/{run_id}").text
    assert shown_status(page) == "cancelled"
    assert 'id="resume"' not in page and 'id="cancel"' not in page
    again = post(world, f"/runs/{run_id}/resume")
    assert again.status_code == 400  # type: ignore[attr-defined]
    assert "cannot be continued" in again.text  # type: ignore[attr-defined]


def test_retry_with_nothing_to_retry_says_so_on_the_run_page(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    run_id = start_removal(state_of(world), tmp_path, next(members))
    answer = post(world, f"/runs/{run_id}/retry")
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert "nothing to retry" in settle(world, run_id)


def test_the_events_of_a_run_not_driven_end_at_once(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    run_id = start_removal(state_of(world), tmp_path, next(members))
    answer = world.get(f"/runs/{run_id}/events")
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.count("data: ") == 1 and '"done": true' in answer.text


def test_an_iccid_or_a_message_with_markup_is_shown_as_text(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    rows = [*next(members), "<script>alert(1)</script>"]
    run_id = start_removal(state_of(world), tmp_path, rows, skip_invalid=True)
    page = world.get(f"/runs/{run_id}?outcome=invalid").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    missing = world.get("/runs/%3Cscript%3Ealert(2)")
    assert missing.status_code == 404
    assert "<script>alert(2)" not in missing.text and "&lt;script&gt;alert(2)" in missing.text


def test_a_path_that_is_no_page_gets_the_consoles_own_404(world: TestClient) -> None:
    answer = world.get("/runs/a/b/c/<script>")
    assert answer.status_code == 404
    assert 'id="error-message"' in answer.text and "<script>" not in answer.text


def test_a_look_up_run_shows_its_outcomes_and_is_not_retried(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    from lf_bulk import lookups

    state = state_of(world)
    source = tmp_path / "cards.csv"
    source.write_text("iccid\n" + "".join(f"{row}\n" for row in next(members)))
    with state.job_session() as session, state.journal() as journal:
        result = lookups.start_lookup(
            journal, session.client, state.settings, read_iccids(source),
            lookups.LookupKind.VERIFY, report_dir=tmp_path / "report",
        )  # fmt: skip
    page = world.get(f"/runs/{result.run_id}").text
    assert shown_status(page) == "finished"
    outcomes = page[page.index('id="outcomes"') :].split("</table>")[0]
    assert sum(result.counts.values()) == 5
    for name, count in result.counts.items():
        assert f'<td>{name}</td><td class="num">{count}</td>' in outcomes
    assert 'id="retry"' not in page and 'download="items.csv"' in page


def test_a_run_the_console_drove_is_what_runs_list_shows(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    import json

    from clihelp import expect, invoke

    state = state_of(world)
    run_id = start_removal(state, tmp_path, next(members), EngineOptions(wait=False))
    post(world, f"/runs/{run_id}/wait")
    settle(world, run_id)
    listed = expect(
        invoke(["--home", str(state.settings.home), "runs", "list", "--format", "json"]), 0
    )
    [record] = [r for r in json.loads(listed.stdout) if r["run_id"] == run_id]
    assert record["status"] == "finished" and record["outcomes"]["removed"] == 5


def test_a_report_folder_changed_in_the_journal_is_never_served_from(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    import sqlite3

    state = state_of(world)
    run_id = start_removal(state, tmp_path, next(members))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "items.csv").write_text("someone else's data")
    with sqlite3.connect(state.settings.home / "journal.db") as db:
        db.execute("UPDATE runs SET report_dir = ? WHERE run_id = ?", (str(elsewhere), run_id))
    answer = world.get(f"/runs/{run_id}/files/items.csv")
    assert answer.status_code == 409
    assert "someone else" not in answer.text
    assert "changed by something other than lf-bulk" in answer.text


def test_a_bug_shows_a_plain_page_and_no_traceback(
    world: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("secret detail /home/x/.lf-bulk")

    monkeypatch.setattr(runs, "listing", broken)
    raw = TestClient(world.app, base_url=str(world.base_url), raise_server_exceptions=False)
    raw.cookies = world.cookies
    answer = raw.get("/runs")
    assert answer.status_code == 500
    assert "Something went wrong" in answer.text and 'id="error-message"' in answer.text
    assert "secret detail" not in answer.text and "Traceback" not in answer.text
