"""Lost answers, stops and resumes of the engine, on the real sandbox app and a fake clock.

Every test that sends asks the sandbox's own mutation log how often the server took each ICCID.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from storehelp import journal_at

from lf_bulk import errors
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import RETRYABLE_FAILURES, EngineOptions, RunDriver, RunStopped
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import (
    FAILED,
    LOST,
    NOT_FINISHED,
    PLANNED,
    SENDING,
    PlannedItem,
)
from lf_bulk.models import Operation
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sandbox.seed import DEMO_GROUP, FLEET_GROUP, FOREIGN_GROUP, PARTNER, PILOT_GROUP

from inprocess import FakeClock, World, accepted_counts, open_world, taken_then_sent_again

# Every test here runs on both stores (SQLite files, PostgreSQL).
pytestmark = pytest.mark.usefixtures("each_store")


@pytest.fixture
def worlds(tmp_path: Path) -> Iterator[list[World]]:
    opened: list[World] = []
    yield opened
    for world in opened:
        world.close()


def world_of(worlds: list[World], tmp_path: Path, faults: str = "", **kwargs: object) -> World:
    world = open_world(tmp_path, faults, **kwargs)  # type: ignore[arg-type]
    worlds.append(world)
    return world


def outcomes(world: World, run_id: str) -> dict[str, tuple[str | None, str]]:
    return {i.iccid: (i.outcome, i.reason_code) for i in world.journal.items(run_id)}


# ---------------------------------------------------------------- the transport never re-sends


def _post_counting_client(failure: object) -> tuple[LinksfieldClient, list[httpx.Request]]:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        if len(posts) == 1:
            if isinstance(failure, Exception):
                raise failure
            assert isinstance(failure, httpx.Response)
            return failure
        return httpx.Response(
            200, json={"code": "0000", "message": "ok", "data": {"request_id": "r1"}}
        )

    client = LinksfieldClient(
        "https://api.test/topup",
        PARTNER,
        transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 3, sleep=lambda s: None),
        sleep=lambda s: None,
    )
    return client, posts


AMBIGUOUS = {
    "read-timeout": httpx.ReadTimeout("slow"),
    "reset": httpx.ReadError("connection reset by peer"),
    "dropped-answer": httpx.RemoteProtocolError("peer closed connection"),
    "500": httpx.Response(500, json={"code": "1500", "message": "internal"}),
    "502": httpx.Response(502, text="<html>Bad Gateway</html>"),
    "504": httpx.Response(504, text="<html>Gateway Timeout</html>"),
}
PROVEN_UNSENT = {
    "connect-refused": httpx.ConnectError("connection refused"),
    "connect-timeout": httpx.ConnectTimeout("no route"),
    "429": httpx.Response(429, json={"code": "1429", "message": "slow down"}),
    "503": httpx.Response(503, json={"code": "1500", "message": "unavailable"}),
}


@pytest.mark.parametrize("failure", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_a_mutating_call_that_may_have_acted_is_sent_once(failure: object) -> None:
    client, posts = _post_counting_client(failure)
    with client, pytest.raises(errors.ApiError):
        client.add_sims("G1", ["8900000000000000001"])
    assert len(posts) == 1
    assert not errors.proves_not_acted(_raised(failure))


@pytest.mark.parametrize("failure", PROVEN_UNSENT.values(), ids=PROVEN_UNSENT.keys())
def test_a_mutating_call_the_server_provably_refused_is_retried(failure: object) -> None:
    client, posts = _post_counting_client(failure)
    with client:
        assert client.add_sims("G1", ["8900000000000000001"]).request_id == "r1"
    assert len(posts) == 2


def _raised(failure: object) -> BaseException:
    client, _ = _post_counting_client(failure)
    with client:
        try:
            client.add_sims("G1", ["8900000000000000001"])
        except errors.ApiError as error:
            return error
    raise AssertionError("no error")


# ---------------------------------------------------------------- lost answers within a run


def test_a_dropped_answer_is_settled_by_membership_and_never_sent_again(
    worlds: list[World], tmp_path: Path
) -> None:
    world = world_of(worlds, tmp_path, "drop_first=1,async=3s")
    iccids = world.state.ungrouped_sims(10)
    run_id = world.new_run(iccids, PILOT_GROUP)
    batch_of = {i.iccid: i.batch_id for i in world.journal.items(run_id)}

    result = world.driver(run_id).drive()

    assert result.exit_code == ExitCode.OK
    (lost,) = [b.batch_id for b in world.journal.batches(run_id) if b.state == LOST]
    seen = outcomes(world, run_id)
    assert [seen[i] for i in iccids if batch_of[i] == lost] == [("added", "LOST")] * 5
    assert {seen[i] for i in iccids if batch_of[i] != lost} == {("added", "")}
    assert accepted_counts(world.state) == Counter(dict.fromkeys(iccids, 1))
    assert taken_then_sent_again(world.state) == {}


def test_a_lost_operation_still_running_shows_as_sim_locked_and_is_settled_again(
    worlds: list[World], tmp_path: Path
) -> None:
    # The window (2 s) is shorter than the operation (20 s): the first settlement finds nothing,
    # the re-send meets SIM_LOCKED, and that means "still running", not a failure.
    world = world_of(worlds, tmp_path, "drop_first=1,async=20s")
    iccids = world.state.ungrouped_sims(5)
    run_id = world.new_run(iccids, PILOT_GROUP)

    result = world.driver(run_id, EngineOptions(async_window=2.0)).drive()

    assert result.exit_code == ExitCode.OK
    assert set(outcomes(world, run_id).values()) == {("added", "LOST")}
    assert accepted_counts(world.state) == Counter(dict.fromkeys(iccids, 2))
    successes = Counter(
        r["iccid"]
        for m in world.state.mutation_log()
        if m.request_id
        for r in world.state.async_result(PARTNER, m.request_id)["results"]
        if r["status"] == "SUCCESS"
    )
    assert successes == Counter(dict.fromkeys(iccids, 1))
    assert set(iccids) <= set(world.state.members(PILOT_GROUP))


def test_the_window_before_settling_is_learned_and_remembered_in_the_journal(
    worlds: list[World], tmp_path: Path
) -> None:
    world = world_of(worlds, tmp_path, "async=4s")
    run_id = world.new_run(world.state.ungrouped_sims(5), PILOT_GROUP)
    driver = world.driver(run_id)
    assert driver._async_window() == 10.0  # nothing learned yet: the safe default
    assert driver.drive().exit_code == ExitCode.OK
    assert world.journal.async_durations(run_id) == [4.0]
    later = world.driver(world.new_run(world.state.ungrouped_sims(5), PILOT_GROUP))
    assert later._async_window() == pytest.approx(4.0 * 1.5 + 2.0)


# ---------------------------------------------------------------- resume after a crash


def test_resume_waits_out_the_window_of_a_batch_killed_while_sending(
    worlds: list[World], tmp_path: Path
) -> None:
    world = world_of(worlds, tmp_path, "async=6s")
    iccids = world.state.ungrouped_sims(5)
    run_id = world.new_run(iccids, PILOT_GROUP)
    # The process died after the server took the batch and before the answer was journaled.
    world.journal.mark_sending(run_id, 1, sent_at=world.clock())
    world.client.add_sims(PILOT_GROUP, iccids)
    assert world.journal.batches(run_id)[0].state == SENDING

    result = world.driver(run_id).drive()

    assert result.exit_code == ExitCode.OK
    assert set(outcomes(world, run_id).values()) == {("added", "LOST")}
    assert accepted_counts(world.state) == Counter(dict.fromkeys(iccids, 1))


def test_resume_of_a_batch_killed_before_its_send_sends_it_once(
    worlds: list[World], tmp_path: Path
) -> None:
    world = world_of(worlds, tmp_path)
    iccids = world.state.ungrouped_sims(5)
    run_id = world.new_run(iccids, PILOT_GROUP)
    world.journal.mark_sending(run_id, 1, sent_at=world.clock())  # killed before the POST

    assert world.driver(run_id).drive().exit_code == ExitCode.OK
    assert set(outcomes(world, run_id).values()) == {("added", "")}
    assert accepted_counts(world.state) == Counter(dict.fromkeys(iccids, 1))


def test_the_send_is_journaled_before_the_request_leaves(
    worlds: list[World], tmp_path: Path
) -> None:
    world = world_of(worlds, tmp_path)
    run_id = world.new_run(world.state.ungrouped_sims(10), PILOT_GROUP)
    states_at_post: list[str] = []
    inner = world.client._http._transport

    class Watching(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                with journal_at(tmp_path / "journal.db") as other:
                    batches = other.batches(run_id)
                states_at_post.append(",".join(sorted({b.state for b in batches if b.sends})))
            return inner.handle_request(request)

    world.client._http._transport = Watching()
    assert world.driver(run_id).drive().exit_code == ExitCode.OK
    assert len(states_at_post) == 2
    assert all(SENDING in states for states in states_at_post)


# ---------------------------------------------------------------- stops


def test_an_unknown_group_fails_the_run_for_good(worlds: list[World], tmp_path: Path) -> None:
    world = world_of(worlds, tmp_path)
    run_id = world.new_run(world.state.ungrouped_sims(5), FOREIGN_GROUP)

    with pytest.raises(RunStopped) as stopped:
        world.driver(run_id).drive()

    assert stopped.value.permanent
    assert "cannot fix" in str(stopped.value)
    run = world.journal.run(run_id)
    assert run.status == FAILED and "does not exist" in run.details["stop_reason"]
    assert [b.state for b in world.journal.batches(run_id)] == [PLANNED]
    assert world.journal.newest_unfinished() is None
    assert accepted_counts(world.state) == Counter()


def test_a_stop_on_throttling_leaves_the_batch_unsent_and_resume_sends_it_once(
    worlds: list[World], tmp_path: Path
) -> None:
    clock = FakeClock()
    throttled = world_of(worlds, tmp_path, "429=1", clock=clock)
    iccids = throttled.state.ungrouped_sims(5)
    run_id = throttled.new_run(iccids, PILOT_GROUP)

    with pytest.raises(RunStopped) as stopped:
        throttled.driver(run_id).drive()

    assert not stopped.value.permanent and f"runs resume {run_id}" in str(stopped.value)
    assert throttled.journal.run(run_id).status == NOT_FINISHED
    assert [b.state for b in throttled.journal.batches(run_id)] == [PLANNED]
    assert accepted_counts(throttled.state) == Counter()
    assert throttled.journal.newest_unfinished() is not None

    healthy = open_world(tmp_path, clock=clock, state=throttled.state)
    try:
        assert healthy.driver(run_id).drive().exit_code == ExitCode.OK
    finally:
        healthy.client.close()
        healthy.journal.close()
    assert accepted_counts(throttled.state) == Counter(dict.fromkeys(iccids, 1))


def test_a_batch_the_server_rejects_fails_its_iccids_and_the_run_goes_on(tmp_path: Path) -> None:
    rejected = ["8900000000000000001", "8900000000000000002"]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and rejected[0] in request.content.decode():
            return httpx.Response(200, json={"code": "1001", "message": "bad iccids"})
        if request.method == "POST":
            data = {"request_id": "ok-1"}
        else:
            data = {
                "request_id": "ok-1",
                "operation": "ADD",
                "group_id": "G1",
                "status": "SUCCESS",
                "created_at": "2026-01-01T00:00:00Z",
                "finished_at": "2026-01-01T00:00:01Z",
                "results": [{"iccid": "8900000000000000003", "status": "SUCCESS"}],
            }
        return httpx.Response(200, json={"code": "0000", "message": "ok", "data": data})

    clock = FakeClock()
    client = LinksfieldClient(
        "https://api.test/topup",
        PARTNER,
        transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 1, sleep=lambda s: None),
        sleep=clock.sleep,
    )
    with journal_at(tmp_path / "j.db") as journal, client:
        items = [
            PlannedItem(n, i, Operation.ADD, "G1")
            for n, i in enumerate([*rejected, "8900000000000000003"])
        ]
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=items, batch_size=2
        )
        result = RunDriver(journal, client, run_id, clock=clock, sleep=clock.sleep).drive()
        seen = {i.iccid: (i.outcome, i.reason_code) for i in journal.items(run_id)}
    assert result.exit_code == ExitCode.SOME_FAILED
    assert seen == {
        rejected[0]: ("failed", "1001"),
        rejected[1]: ("failed", "1001"),
        "8900000000000000003": ("added", ""),
    }


# ---------------------------------------------------------------- splitting, retrying, pacing


def test_a_batch_over_the_server_limit_is_split_to_exactly_that_limit(
    worlds: list[World], tmp_path: Path
) -> None:
    world = world_of(worlds, tmp_path, "max_iccids=3")
    iccids = world.state.ungrouped_sims(10)
    run_id = world.new_run(iccids, PILOT_GROUP, batch_size=10)

    assert world.driver(run_id).drive().exit_code == ExitCode.OK
    sizes = [m.iccid_count for m in world.state.mutation_log() if m.request_id]
    assert sorted(sizes, reverse=True) == [
        3,
        3,
        3,
        1,
    ]  # halving 10 would have sent 5s, refused again
    assert accepted_counts(world.state) == Counter(dict.fromkeys(iccids, 1))


def _sent_after_a_hopeless_answer(world: World) -> set[str]:
    """ICCIDs sent again after the server answered IN_OTHER_GROUP for them (no retry can help)."""
    hopeless: set[str] = set()
    again: set[str] = set()
    for record in world.state.mutation_log():
        again.update(i for i in record.iccids if i in hopeless)
        if record.request_id:
            results = world.state.async_result(PARTNER, record.request_id)["results"]
            hopeless.update(r["iccid"] for r in results if r["reason_code"] == "IN_OTHER_GROUP")
    return again


def test_only_retryable_failures_are_sent_again(worlds: list[World], tmp_path: Path) -> None:
    world = world_of(worlds, tmp_path, "sim_locked=0.5,seed=3")
    elsewhere = world.state.members(FLEET_GROUP)[:4]  # IN_OTHER_GROUP: retrying cannot help
    fine = world.state.ungrouped_sims(16)
    run_id = world.new_run(elsewhere + fine, DEMO_GROUP, batch_size=20)
    first = world.driver(run_id, EngineOptions(max_attempts=2, retry_delay=0.1)).drive()
    assert first.exit_code == ExitCode.SOME_FAILED
    first_outcomes = outcomes(world, run_id)
    hopeless = [i for i in elsewhere if first_outcomes[i] == ("failed", "IN_OTHER_GROUP")]
    locked = [i for i in fine if first_outcomes[i] == ("failed", "SIM_LOCKED")]
    assert hopeless and locked
    assert max(i.attempts for i in world.journal.items(run_id)) == 2  # retried within the run
    assert _sent_after_a_hopeless_answer(world) == set()
    before = accepted_counts(world.state)

    world.journal.requeue_failed(run_id, sorted(RETRYABLE_FAILURES), 20)  # `runs retry`
    second = world.driver(run_id, EngineOptions(max_attempts=10, retry_delay=0.1)).drive()

    assert second.exit_code == ExitCode.SOME_FAILED
    after = accepted_counts(world.state)
    assert _sent_after_a_hopeless_answer(world) == set()
    assert all(after[i] == before[i] for i in hopeless)
    assert all(after[i] > before[i] for i in locked)
    assert {outcomes(world, run_id)[i] for i in fine} == {("added", "")}


def test_a_429_holds_off_every_later_request() -> None:
    clock = FakeClock()
    pacer_sleeps: list[float] = []
    answers = iter(
        [
            httpx.Response(
                429, json={"code": "1429", "message": "slow"}, headers={"Retry-After": "5"}
            ),
            httpx.Response(200, json={"code": "0000", "message": "ok", "data": []}),
        ]
    )
    client = LinksfieldClient(
        "https://api.test/topup",
        PARTNER,
        transport=httpx.MockTransport(lambda r: next(answers)),
        pacer=RequestPacer(10, 3, clock=clock, sleep=pacer_sleeps.append),
        sleep=lambda s: None,  # the retry's own wait does not move the clock here
    )
    with client:
        assert client.list_groups() == []
    # The retry went through the pacer, which the 429 had pushed back by Retry-After.
    assert pacer_sleeps and max(pacer_sleeps) == pytest.approx(5.0)


def test_retries_back_off_exponentially() -> None:
    class Ceiling(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    sleeps: list[float] = []
    client = LinksfieldClient(
        "https://api.test/topup",
        PARTNER,
        transport=httpx.MockTransport(lambda r: httpx.Response(502, text="<html>down</html>")),
        pacer=RequestPacer(1000, 3, sleep=lambda s: None),
        retry=RetryPolicy(max_attempts=5, initial_wait=0.5, max_wait=3.0),
        sleep=sleeps.append,
        rng=Ceiling(),
    )
    with client, pytest.raises(errors.HttpStatusError):
        client.list_groups()
    assert sleeps == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(413, text="<html>Request Entity Too Large</html>"),
        httpx.Response(200, json={"code": "1003", "message": "bad signature"}),
    ],
    ids=["proxy-413", "signature-refused"],
)
def test_a_refused_send_stops_the_run_with_the_batch_unsent(
    tmp_path: Path, answer: httpx.Response
) -> None:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return answer

    clock = FakeClock()
    client = LinksfieldClient(
        "https://api.test/topup",
        PARTNER,
        transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 1, sleep=lambda s: None),
        sleep=clock.sleep,
    )
    with journal_at(tmp_path / "j.db") as journal, client:
        items = [PlannedItem(2, "8900000000000000001", Operation.ADD, "G1")]
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=items, batch_size=5
        )
        with pytest.raises(RunStopped) as stopped:
            RunDriver(journal, client, run_id, clock=clock, sleep=clock.sleep).drive()
        assert not stopped.value.permanent
        assert [b.state for b in journal.batches(run_id)] == [PLANNED]
        assert journal.run(run_id).status == NOT_FINISHED
    assert len(posts) == 1
