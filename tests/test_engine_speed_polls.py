"""Issue #14, the first polls of a run: once one operation is seen unfinished, the batches sent
around it are not polled before they can have finished (no request is spent on an answer that
can only say PROCESSING), and a run with learned durations polls as it did."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from lf_bulk.exitcodes import ExitCode
from lf_bulk.sandbox.seed import PILOT_GROUP

from inprocess import World, open_world

BATCHES = 12


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    opened = open_world(tmp_path, "async=2s")
    try:
        yield opened
    finally:
        opened.close()


def count_polls(world: World) -> list[str]:
    polled: list[str] = []
    real = world.client.async_result

    def counting(request_id: str):  # type: ignore[no-untyped-def]
        polled.append(request_id)
        return real(request_id)

    world.client.async_result = counting  # type: ignore[method-assign]
    return polled


def test_batches_sent_together_wait_once_one_is_seen_unfinished(world: World) -> None:
    iccids = world.state.ungrouped_sims(BATCHES * 5)
    run_id = world.new_run(iccids, PILOT_GROUP, batch_size=5)
    polled = count_polls(world)
    result = world.driver(run_id).drive()
    assert result.exit_code == ExitCode.OK
    assert result.counts == {"added": BATCHES * 5}
    # Every batch is polled at 1 s without the lower bound (all PROCESSING with 2 s operations);
    # now only the polls already on the wire when the first answer came are spent so.
    in_flight = world.client.pacer.max_in_flight
    assert len(polled) <= BATCHES + in_flight, len(polled)  # 24 before: two polls each


def test_a_run_that_learned_its_durations_polls_each_batch_once(world: World) -> None:
    first = world.new_run(world.state.ungrouped_sims(5), PILOT_GROUP, batch_size=5)
    world.driver(first).drive()  # learns the 2 s operations
    iccids = world.state.ungrouped_sims(BATCHES * 5)
    run_id = world.new_run(iccids, PILOT_GROUP, batch_size=5)
    polled = count_polls(world)
    assert world.driver(run_id).drive().exit_code == ExitCode.OK
    assert len(polled) == BATCHES


def test_an_old_or_long_unfinished_batch_never_puts_first_polls_beyond_the_poll_interval(
    world: World,
) -> None:
    run_id = world.new_run(world.state.ungrouped_sims(10), PILOT_GROUP, batch_size=5)
    driver = world.driver(run_id)
    (batch, *_) = world.journal.batches(run_id)
    now = driver.clock()
    # Sent by an earlier drive three hours ago: its age teaches nothing about today's operations.
    driver._learn_unfinished(dataclasses.replace(batch, submitted_at=now - 3 * 3600), now)
    assert driver._expected_duration() == driver.options.first_poll
    # Sent during this drive, unfinished for an hour (a backlog, a clock step): capped.
    driver._driving_since = now - 7200
    driver._learn_unfinished(dataclasses.replace(batch, submitted_at=now - 3600), now)
    assert driver._expected_duration() == driver.options.max_poll_interval
