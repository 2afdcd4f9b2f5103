"""A run the console drives: its live progress page (bars, refresh without JS, server-sent
events), never a second driver, and a stop on the day's quota explained in the library's words."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from consolehelp import TestClient, console_client, console_settings, csrf_of, state_of

from lf_bulk import runs
from lf_bulk.console.runner import Launch
from lf_bulk.console.state import ConsoleState
from lf_bulk.engine import EngineOptions, Progress
from lf_bulk.models import Operation
from lf_bulk.runs import RunResult
from lf_bulk.sources import read_iccids

GROUP = "G1000001"
QUICK = EngineOptions(first_poll=0.1, max_poll_interval=0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("console")
    # A small day: the quota test spends what is left of it.
    settings = console_settings(folder / "home", daily_quota=400, quota_reserve=10)
    with console_client(folder, settings=settings, engine=QUICK) as client:
        yield client


@pytest.fixture(scope="module")
def members(world: TestClient) -> Iterator[list[str]]:
    found = state_of(world).client().list_members(GROUP)
    return iter([found[i : i + 5] for i in range(0, len(found), 5)])


def removal_job(
    state: ConsoleState,
    folder: Path,
    rows: list[str],
    hold: threading.Event | None = None,
    wait: bool = True,
) -> Callable[[Launch], RunResult]:
    """A console job removing `rows` from the group; with `hold`, it stops (holding the run's
    lock) once its first SIMs finished, until `hold` is set."""
    source = folder / "leavers.csv"
    source.write_text("iccid\n" + "".join(f"{row}\n" for row in rows))

    def job(launch: Launch) -> RunResult:
        @contextmanager
        def held(total: int) -> Iterator[Progress]:
            with launch.progress(total) as watcher:

                def finished(count: int) -> None:
                    watcher.finished(count)
                    if hold is not None:
                        hold.wait(20)

                yield Progress(submitted=watcher.submitted, finished=finished)

        table = read_iccids(source)
        with state.journal() as journal:
            return runs.start(
                journal, launch.client, state.settings, table, Operation.REMOVE, GROUP,
                EngineOptions(first_poll=0.1, max_poll_interval=0.2, wait=wait),
                report_dir=folder / "report", progress=held, say=launch.say,
            )  # fmt: skip

    return job


def test_a_run_the_console_drives_shows_live_progress_and_is_never_driven_twice(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    state = state_of(world)
    hold = threading.Event()
    launched = state.runner.launch("remove", removal_job(state, tmp_path, next(members), hold))
    try:
        run_id = launched.run_id()
        deadline = time.monotonic() + 20
        while not (live := state.runner.live(run_id)) or not live.finished:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        page = world.get(f"/runs/{run_id}").text
        assert re.search(r'id="run-status"[^>]*>running<', page)
        assert '<progress id="progress" value="5" max="5">' in page
        assert '<meta http-equiv="refresh" content="3">' in page
        assert (
            'src="/static/progress.js"' in page and f'data-events="/runs/{run_id}/events"' in page
        )
        assert 'id="resume"' not in page and 'id="cancel"' not in page
        assert "leavers.csv: 5 rows" in page  # what the library said, as the CLI says it
        for action in ("resume", "wait", "cancel"):
            refused = world.post(f"/runs/{run_id}/{action}", data={"csrf_token": csrf_of(world)})
            assert refused.status_code == 409, action
            assert "being driven by this console right now" in refused.text
        threading.Timer(0.6, hold.set).start()
        events = world.get(f"/runs/{run_id}/events").text
        assert events.count("data: ") >= 2
        assert '"done": false' in events and events.rstrip().endswith('"error": ""}')
        assert '"done": true' in events.split("data: ")[-1]
    finally:
        hold.set()
        launched.join(20)
    page = world.get(f"/runs/{run_id}").text
    assert re.search(r'id="run-status"[^>]*>finished<', page)
    assert 'http-equiv="refresh"' not in page


def test_a_job_refused_before_its_run_exists_raises_the_refusal(
    world: TestClient, tmp_path: Path
) -> None:
    from lf_bulk.errors import InvalidRowsError

    state = state_of(world)
    launched = state.runner.launch("remove", removal_job(state, tmp_path, ["not-an-iccid"]))
    with pytest.raises(InvalidRowsError):
        launched.run_id()


def test_a_stop_on_the_days_quota_is_explained_and_resumable(
    world: TestClient, members: Iterator[list[str]], tmp_path: Path
) -> None:
    state = state_of(world)
    launched = state.runner.launch(
        "remove", removal_job(state, tmp_path, next(members), wait=False)
    )
    run_id = launched.run_id()
    launched.join(20)
    ledger = state.quota()
    while ledger.left_today():
        ledger.take()
    answer = world.post(f"/runs/{run_id}/resume", data={"csrf_token": csrf_of(world)})
    assert answer.status_code == 303
    deadline = time.monotonic() + 20
    while state.runner.driving(run_id):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    page = world.get(f"/runs/{run_id}").text
    assert re.search(r'id="run-status"[^>]*>not_finished<', page)
    alert = re.search(r'id="run-error" role="alert">([^<]*)<', page)
    assert alert and "quota" in alert.group(1)
    assert 'id="resume"' in page  # resumable after the reset


def test_the_runner_forgets_the_oldest_ended_runs_only() -> None:
    from contextlib import nullcontext

    from lf_bulk.console import runner as runner_module
    from lf_bulk.console.runner import LiveProgress, RunManager

    manager = RunManager(lambda: nullcontext())  # type: ignore[arg-type, return-value]
    driving = LiveProgress("R-driving", "remove")
    manager._track(driving)
    for number in range(runner_module.MAX_TRACKED + 10):
        ended = LiveProgress(f"R{number}", "remove", done=True)
        manager._track(ended)
    assert manager.live("R-driving") is driving  # never forgotten while driven
    assert manager.live("R0") is None
    assert manager.live(f"R{runner_module.MAX_TRACKED + 9}") is not None


def test_a_resumed_run_shows_as_driven_from_the_click_and_a_refusal_still_comes_back() -> None:
    # A resume names its run: the page must say it is driven (no second Resume) while the job
    # starts, and an error before the job holds the run is still the answer to the click.
    from contextlib import nullcontext

    from lf_bulk.console.runner import RunManager
    from lf_bulk.errors import RunLocked

    manager = RunManager(lambda: nullcontext())  # type: ignore[arg-type, return-value]
    go, announce = threading.Event(), threading.Event()

    def job(launch: Launch) -> object:
        go.wait(10)
        if announce.is_set():
            runs.announce_run("R-held")
            return None
        raise RunLocked("run R-held is being driven by another lf-bulk process")

    refused = manager.launch("resume R-held", job, run_id="R-held")
    assert manager.driving("R-held")  # before the job did anything
    go.set()
    with pytest.raises(RunLocked):
        refused.run_id(timeout=10)
    refused.join(10)
    live = manager.live("R-held")
    assert live is not None and live.done and "another lf-bulk process" in live.error
    assert not manager.driving("R-held")

    go.clear()
    announce.set()
    held = manager.launch("resume R-held", job, run_id="R-held")
    assert manager.driving("R-held")
    go.set()
    assert held.run_id(timeout=10) == "R-held"
    held.join(10)
    assert not manager.driving("R-held")
