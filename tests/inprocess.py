"""The real sandbox application, served in-process on a fake clock (no sockets, no real waits).

`World` wires one `SandboxState` (its own clock: the fake one), the sandbox's ASGI app with its
faults gate, a `LinksfieldClient` whose transport calls that app directly, and a journal. The
engine gets the same clock and its `sleep` advances it, so an operation that takes 20 s on the
server takes milliseconds of wall time in a test.

Also the mutation-log questions every fault and crash test asks: how often did the server take each
ICCID, and was any ICCID sent again after the server had taken it?
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from storehelp import journal_at

from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import EngineOptions, RunDriver
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import Operation
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sandbox.app import create_app
from lf_bulk.sandbox.faults import FaultSpec
from lf_bulk.sandbox.seed import PARTNER
from lf_bulk.sandbox.state import SandboxState

# No rate limit to speak of (the gate's limiter runs on the real clock), quick operations.
WORLD_FAULTS = "rate=100000,concurrency=50,async=1-2s"


class FakeClock:
    """Wall-clock seconds that move only when someone sleeps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            # Never zero: a loop that sleeps must see time move.
            self._now += max(seconds, 0.001)


class InProcessTransport(httpx.BaseTransport):
    """Sends each request to an ASGI app in this process, like a socket would.

    An answer cut short (the sandbox's `drop` faults) raises `RemoteProtocolError`, as httpx does
    for a real connection closed mid-body.
    """

    def __init__(self, app: Any) -> None:
        self._app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return asyncio.run(self._handle(request))

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 40000),
            "server": (url.host, url.port or 80),
        }
        delivered = False
        started: dict[str, Any] = {}
        parts: list[bytes] = []
        complete = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal complete
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                complete = not message.get("more_body", False)

        await self._app(scope, receive, send)
        if not complete:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete body")
        return httpx.Response(
            started["status"], headers=started.get("headers", []), content=b"".join(parts)
        )


@dataclass
class World:
    clock: FakeClock
    state: SandboxState
    client: LinksfieldClient
    journal: Journal

    def new_run(
        self,
        iccids: list[str],
        group_id: str,
        *,
        operation: Operation = Operation.ADD,
        batch_size: int = 5,
    ) -> str:
        items = [PlannedItem(n + 2, i, operation, group_id) for n, i in enumerate(iccids)]
        return self.journal.create_run(
            kind="sims",
            operation=str(operation),
            group_id=group_id,
            items=items,
            batch_size=batch_size,
        )

    def driver(self, run_id: str, options: EngineOptions | None = None) -> RunDriver:
        return RunDriver(
            self.journal,
            self.client,
            run_id,
            options=options,
            clock=self.clock,
            sleep=self.clock.sleep,
        )

    def close(self) -> None:
        self.client.close()
        self.journal.close()
        self.state.close()


def open_world(
    folder: Path,
    faults: str = "",
    *,
    sims: int = 1_000,
    clock: FakeClock | None = None,
    state: SandboxState | None = None,
) -> World:
    """A world on `folder`; pass `state` (and its clock) to serve the same world with new faults."""
    spec = FaultSpec.parse(",".join(p for p in (WORLD_FAULTS, faults) if p))
    clock = clock or FakeClock()
    if state is None:
        state = SandboxState(folder / "sandbox.db", rules=spec.rules(), sims=sims, clock=clock)
    client = LinksfieldClient(
        "http://sandbox.test",
        PARTNER,
        transport=InProcessTransport(create_app(state, spec)),
        pacer=RequestPacer(100_000, 4, clock=clock, sleep=clock.sleep),
        retry=RetryPolicy(max_attempts=4, deadline_seconds=3_600),
        sleep=clock.sleep,
        clock=clock,  # Vshop's tradeTime must be near the sandbox's (fake) clock
    )
    return World(clock, state, client, journal_at(folder / "journal.db"))


# ---------------------------------------------------------------- the server's own log


def accepted_counts(state: SandboxState) -> Counter[str]:
    """How many add/remove requests the server accepted (gave a request id) per ICCID."""
    counts: Counter[str] = Counter()
    for record in state.mutation_log():
        if record.request_id:
            counts.update(record.iccids)
    return counts


def taken_then_sent_again(state: SandboxState) -> dict[str, int]:
    """ICCIDs that reached the server again after a request that changed them had been accepted
    (with how many such later requests): the double sends the journal exists to prevent.

    Call it once every operation has finished (the results are read from the server).
    """
    taken: set[str] = set()
    again: Counter[str] = Counter()
    for record in state.mutation_log():
        again.update(i for i in record.iccids if i in taken)
        if record.request_id:
            result = state.async_result(PARTNER, record.request_id)
            taken.update(r["iccid"] for r in result.get("results", []) if r["status"] == "SUCCESS")
    return dict(again)
