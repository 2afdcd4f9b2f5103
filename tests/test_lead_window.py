"""A lost answer's asynchronous window starts when the answer was lost, not when the send began.

Found by `make chaos`: a send refused with 429 and retried by the transport (allowed: the server
provably did nothing) reached the server seconds after the batch was marked `sending`; its answer
was then lost, and the window, counted from the first attempt, had already passed. The batch was
settled while the accepted operation still ran, and its ICCIDs were sent again.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import EngineOptions
from lf_bulk.exitcodes import ExitCode
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sandbox.app import create_app
from lf_bulk.sandbox.faults import FaultSpec
from lf_bulk.sandbox.seed import PARTNER, PILOT_GROUP

from inprocess import WORLD_FAULTS, InProcessTransport, open_world, taken_then_sent_again

FAULTS = "drop_first=1,async=3s"
THROTTLED_FOR = 20  # seconds the first POST is held off, longer than the window below


class ThrottleFirstPost(httpx.BaseTransport):
    """Answers the first POST with 429 (nothing done) before the sandbox ever sees it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.throttled = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and not self.throttled:
            self.throttled = True
            body = {"code": "1429", "message": "rate limit exceeded", "data": None}
            headers = {"Retry-After": str(THROTTLED_FOR)}
            return httpx.Response(429, headers=headers, content=json.dumps(body).encode())
        return self.inner.handle_request(request)


def test_the_window_is_counted_from_the_lost_answer_not_the_first_attempt(tmp_path: Path) -> None:
    world = open_world(tmp_path, FAULTS)
    spec = FaultSpec.parse(f"{WORLD_FAULTS},{FAULTS}")
    world.client.close()
    world.client = LinksfieldClient(
        "http://sandbox.test",
        PARTNER,
        transport=ThrottleFirstPost(InProcessTransport(create_app(world.state, spec))),
        pacer=RequestPacer(100_000, 1, clock=world.clock, sleep=world.clock.sleep),
        retry=RetryPolicy(max_attempts=4, deadline_seconds=3_600),
        sleep=world.clock.sleep,
    )
    try:
        iccids = world.state.ungrouped_sims(5)
        run_id = world.new_run(iccids, PILOT_GROUP)

        result = world.driver(run_id, EngineOptions(async_window=5.0)).drive()

        assert result.exit_code == ExitCode.OK
        assert {i.outcome for i in world.journal.items(run_id)} == {"added"}
        assert taken_then_sent_again(world.state) == {}  # the accepted send was never repeated
        accepted = [m for m in world.state.mutation_log() if m.request_id]
        assert len(accepted) == 1 and accepted[0].dropped
    finally:
        world.close()
