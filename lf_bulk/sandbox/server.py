"""Running the sandbox: blocking (`serve`, for `lf-bulk sandbox serve`) or in a background thread
(`running_sandbox`, for the in-process sandbox environment and for tests).

The state file is seeded on first use only, so every server and CLI run on the same file sees the
same world. uvicorn logs warnings and errors only, through the standard `logging` tree (stderr).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from lf_bulk.sandbox.app import create_app
from lf_bulk.sandbox.faults import FaultSpec, coerce_faults
from lf_bulk.sandbox.pusher import Pusher, PushTarget
from lf_bulk.sandbox.state import SandboxState

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 5.0
IDLE_TIMEOUT = 5.0
"""Seconds a connection may stay silent, before its first request or between requests."""
MAX_CONNECTIONS = 128
"""Open connections (and requests in progress) past which every new request gets a 503."""

# uvicorn reports a response that stops short of its Content-Length as an application error. The
# sandbox does that on purpose (the `drop` fault), so that one message is not worth a log line.
_DROP_MESSAGE = "ASGI callable returned without completing response."


@dataclass(frozen=True)
class SandboxServer:
    base_url: str
    state: SandboxState
    faults: FaultSpec
    host: str
    port: int
    pusher: Pusher | None = None


def open_state(path: Path, faults: FaultSpec, sims: int | None = None) -> SandboxState:
    return SandboxState(path, rules=faults.rules(), sims=sims)


@contextmanager
def running_sandbox(
    state_path: Path,
    faults: FaultSpec | str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sims: int | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    push: PushTarget | None = None,
) -> Iterator[SandboxServer]:
    """A sandbox server in a daemon thread, ready to accept connections; stopped on exit.

    With `push`, every order it creates is pushed there (`SandboxServer.pusher`); without (the
    embedded sandbox), nothing is pushed.
    """
    spec = coerce_faults(faults)
    with ExitStack() as stack:
        state = stack.enter_context(open_state(Path(state_path), spec, sims))
        pusher = stack.enter_context(pushing(state, spec, push)) if push else None
        server = PromptServer(_config(create_app(state, spec), idle_timeout, max_connections))
        bound_port = stack.enter_context(
            served_in_thread(server, host, port, name="lf-bulk-sandbox", what="the sandbox server")
        )
        yield SandboxServer(base_url(host, bound_port), state, spec, host, bound_port, pusher)


@contextmanager
def served_in_thread(
    server: PromptServer,
    host: str,
    port: int,
    *,
    name: str,
    what: str,
    join_timeout: float = SHUTDOWN_TIMEOUT,
) -> Iterator[int]:
    """`server` serving in a daemon thread on `host`:`port` (0: a free port), ready to accept
    connections; yields the port it is bound to; stopped, and its socket closed, on exit.

    The sandbox, the console and the push receiver are all served this way in tests and demos.
    """
    sock = bind_socket(host, port)
    try:
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )
        thread.start()
        try:
            _wait_until_started(server, thread, what)
            yield sock.getsockname()[1]
        finally:
            server.stop()
            thread.join(join_timeout)
    finally:
        sock.close()


@contextmanager
def pushing(state: SandboxState, spec: FaultSpec, target: PushTarget) -> Iterator[Pusher]:
    """Queue a push with every order `state` creates, and deliver them to `target` meanwhile."""
    pusher = Pusher(
        state,
        target,
        time_scale=spec.push_time_scale,
        resend_rate=spec.push_dup_rate,
        seed=spec.seed,
    )
    state.queue_pushes_from_now(pusher.wake)
    pusher.start()
    try:
        yield pusher
    finally:
        state.queue_pushes = False
        pusher.stop()


def serve(
    host: str,
    port: int,
    state_path: Path,
    faults: FaultSpec | str | None = None,
    *,
    sims: int | None = None,
    push: PushTarget | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C). `on_ready` gets the URL once the port is bound; with
    `push`, every order created is pushed there."""
    spec = coerce_faults(faults)
    with ExitStack() as stack:
        state = stack.enter_context(open_state(Path(state_path), spec, sims))
        if push:
            stack.enter_context(pushing(state, spec, push))
        sock = bind_socket(host, port)
        if on_ready:
            on_ready(base_url(host, sock.getsockname()[1]))
        config = _config(create_app(state, spec), IDLE_TIMEOUT, MAX_CONNECTIONS)
        uvicorn.Server(config).run(sockets=[sock])


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free port (read it back with getsockname)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _config(app: Starlette, idle_timeout: float, max_connections: int) -> uvicorn.Config:
    _quiet_deliberate_drops()
    return uvicorn.Config(
        app,
        # h11 is the protocol whose handling of a short body (the `drop` fault) is verified.
        http=_h11_closing_silent_connections(idle_timeout),
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        timeout_keep_alive=max(1, math.ceil(idle_timeout)),
        limit_concurrency=max_connections,
    )


def _h11_closing_silent_connections(idle_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, with its keep-alive timer also running before the first request.

    uvicorn starts that timer only after a response, so a connection that never sends a request
    would be held forever; the timer is cancelled as soon as request data arrives.
    """

    class Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                idle_timeout, self.timeout_keep_alive_handler
            )

    return Protocol


class PromptServer(uvicorn.Server):
    """uvicorn's server, but stopping within milliseconds of `stop()`: what `served_in_thread`
    serves (the in-process sandbox, console and push receiver).

    uvicorn notices `should_exit` on a 0.1 s tick and then waits 0.1 s more for open connections.
    Every CLI run on the in-process sandbox and most tests start and stop one, so those 0.2 s
    added up to a large part of the test suite's time. `stop()` wakes the tick instead of the
    tick polling for it: a server that is merely running costs nothing between its ticks.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    async def main_loop(self) -> None:
        stopping = asyncio.Event()
        self._stopping, self._loop = stopping, asyncio.get_running_loop()
        ticks = 0  # on_tick expects one tick per 0.1 s (it refreshes the Date header every 10)
        while not await self.on_tick(ticks):
            with suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.1)
            ticks += 1

    def stop(self) -> None:
        """Tell the server to stop (from any thread); it notices at once."""
        self.should_exit = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with suppress(RuntimeError):  # its loop has ended already
                loop.call_soon_threadsafe(stopping.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)  # let open connections finish, as uvicorn does
            return
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"{what} stopped while starting (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"{what} did not start within {STARTUP_TIMEOUT:g}s")
        time.sleep(0.005)


class _DeliberateDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _DROP_MESSAGE


_drop_filter = _DeliberateDropFilter()


def _quiet_deliberate_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _drop_filter not in logger.filters:
        logger.addFilter(_drop_filter)
