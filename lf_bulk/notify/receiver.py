"""The Recharge Success receiver: `POST /` verified, limited, stored durably, then answered.

    request -> size (413) -> headers (401) -> body, streamed (413) -> JSON object (400)
            -> signature (401) -> the store's writer commits it -> 200

Nothing is stored for a refused push. An accepted one is answered 200 only after its transaction
is committed on disk (`store.PushStore`); a re-send of a stored event (same business key) is
answered 200 too and counted as a delivery. Writes go through one writer thread that commits every
push waiting at that moment in one transaction (a group commit): one disk flush serves a burst, so
the receiver answers fast under load. A push that cannot be stored within `ANSWER_SECONDS` gets a
503, and Linksfield sends it again (it is deduplicated if it was stored after all).

Why a push was refused goes to the log (warning), never into the answer; the key never does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lf_bulk import wire
from lf_bulk.notify.store import Delivery, Outcome, PushStore
from lf_bulk.sandbox.server import PromptServer, base_url, bind_socket, served_in_thread

log = logging.getLogger(__name__)

ANSWER_SECONDS = 4.0
"""How long a push waits for its commit before a 503 (Linksfield's deadline is 5 s)."""
MAX_PUSHES_PER_COMMIT = 512
"""Pushes committed in one transaction at most."""
MAX_CONNECTIONS = 256
IDLE_TIMEOUT = 5


@dataclass(frozen=True)
class ReceiverKeys:
    """The key id given to Linksfield and the key's value(s): a refreshed key and, while
    deliveries signed with the old value may still arrive, its predecessor."""

    key_id: str
    keys: tuple[bytes, ...]

    def __repr__(self) -> str:  # the key never appears in a log or a traceback
        return f"ReceiverKeys(key_id={self.key_id!r}, keys=<{len(self.keys)} hidden>)"


def parse_keys(key_id: str, key_hex: str) -> ReceiverKeys:
    """Keys from `LF_BULK_NOTIFY_KEY` / `notify_key`: one hex key, or two separated by a comma."""
    values = [part for part in (p.strip() for p in key_hex.split(",")) if part]
    if not values:
        raise ValueError("the notification key is empty")
    if len(values) > 2:
        raise ValueError("give one notification key, or the new and the old one, comma-separated")
    if not wire.is_valid_id(key_id):
        raise ValueError(f"the key id {wire.shown_text(key_id)} is not an id ({wire.ID_ALPHABET})")
    return ReceiverKeys(key_id, tuple(wire.push_key(value) for value in values))


class StoreWriter:
    """The one thread that writes the store: a group commit of whatever pushes are waiting."""

    def __init__(self, store: PushStore) -> None:
        self.store = store
        self._queue: queue.Queue[tuple[Delivery, Future[Outcome]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lf-bulk-notify-store", daemon=True)
        self._thread.start()

    def submit(self, delivery: Delivery) -> Future[Outcome]:
        done: Future[Outcome] = Future()
        self._queue.put((delivery, done))
        return done

    def close(self) -> None:
        """Store whatever was submitted, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_PUSHES_PER_COMMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, waiting: Sequence[tuple[Delivery, Future[Outcome]]]) -> None:
        # A push whose handler gave up waiting (and answered 503) is not stored: Linksfield sends
        # it again. Once running, a future can no longer be cancelled.
        batch = [
            (delivery, done) for delivery, done in waiting if done.set_running_or_notify_cancel()
        ]
        if not batch:
            return
        try:
            outcomes = self.store.record([delivery for delivery, _ in batch])
        except Exception as error:  # the disk, a lock held too long: each push gets a 503
            if len(batch) > 1:
                # One by one, so that a push the store cannot take fails alone.
                for one in batch:
                    self._store_one(*one)
                return
            log.error("could not store a push: %s", error)
            batch[0][1].set_exception(error)
            return
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            done.set_result(outcome)

    def _store_one(self, delivery: Delivery, done: Future[Outcome]) -> None:
        try:
            (outcome,) = self.store.record([delivery])
        except Exception as error:
            log.error("could not store a push: %s", error)
            done.set_exception(error)
        else:
            done.set_result(outcome)


def _refused(reason: wire.PushRejection, request: Request) -> JSONResponse:
    client = request.client.host if request.client else "?"
    log.warning("push refused (401 %s) from %s", reason, client)
    return JSONResponse({"error": "unauthorized"}, status_code=401)


def create_receiver_app(
    writer: StoreWriter,
    keys: ReceiverKeys,
    *,
    clock: Callable[[], float] = time.time,
    profile: wire.PushProfile = wire.PUSH_V2,
) -> Starlette:
    """The ASGI app: `POST /` only."""
    limit = profile.max_body_bytes

    async def receive(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if not declared.isdigit():
                return JSONResponse({"error": "bad Content-Length"}, status_code=400)
            return JSONResponse({"error": f"body over {limit} bytes"}, status_code=413)
        headers = wire.read_push_headers(request.headers, profile)
        if isinstance(headers, wire.PushRejection):
            return _refused(headers, request)
        rejection = wire.check_push_headers(headers, keys.key_id, now=clock(), profile=profile)
        if rejection is not None:
            return _refused(rejection, request)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return JSONResponse({"error": f"body over {limit} bytes"}, status_code=413)
                chunks.append(chunk)
        except ClientDisconnect:
            return JSONResponse({"error": "incomplete body"}, status_code=400)
        body = b"".join(chunks)
        try:
            event = json.loads(body)
        except (ValueError, RecursionError):
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(event, dict):
            return JSONResponse({"error": "the body is not a JSON object"}, status_code=400)
        try:
            signed = wire.verify_push_signature(event, headers, keys.keys, profile)
        except (ValueError, RecursionError):  # JSON that parses but cannot be written back
            return JSONResponse({"error": "the body cannot be read"}, status_code=400)
        if not signed:
            return _refused(wire.PushRejection.BAD_SIGNATURE, request)
        delivery = Delivery(body, event, headers, datetime.now(UTC))
        try:
            outcome = await asyncio.wait_for(
                asyncio.wrap_future(writer.submit(delivery)), ANSWER_SECONDS
            )
        except TimeoutError:
            log.error("a push was not stored within %gs: answered 503", ANSWER_SECONDS)
            return JSONResponse({"error": "not stored in time; send it again"}, status_code=503)
        except Exception:
            return JSONResponse({"error": "not stored; send it again"}, status_code=503)
        return JSONResponse({"result": str(outcome)})

    return Starlette(routes=[Route("/", receive, methods=["POST"])])


def _config(app: Starlette, certfile: Path | None, keyfile: Path | None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=IDLE_TIMEOUT,
        timeout_graceful_shutdown=2,
        limit_concurrency=MAX_CONNECTIONS,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )


def receiver_url(host: str, port: int, *, tls: bool) -> str:
    url = base_url(host, port)
    return url.replace("http://", "https://", 1) + "/" if tls else url + "/"


def serve(
    home: Path,
    keys: ReceiverKeys,
    *,
    host: str,
    port: int,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    on_ready: Callable[[str, Path], None] | None = None,
) -> None:
    """Receive pushes until interrupted (Ctrl-C); `on_ready` gets the URL and the store's path."""
    store = PushStore.open(home, check_same_thread=False)
    writer = StoreWriter(store)
    try:
        config = _config(create_receiver_app(writer, keys), certfile, keyfile)
        config.load()  # a bad certificate or key file fails here, before the port is bound
        sock = bind_socket(host, port)
        try:
            if on_ready:
                on_ready(receiver_url(host, sock.getsockname()[1], tls=bool(certfile)), store.path)
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        writer.close()
        store.close()


@contextmanager
def running_receiver(
    home: Path,
    keys: ReceiverKeys,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.time,
) -> Iterator[str]:
    """A receiver in a daemon thread (tests, the demo); yields its URL; stopped on exit."""
    store = PushStore.open(home, check_same_thread=False)
    writer = StoreWriter(store)
    server = PromptServer(_config(create_receiver_app(writer, keys, clock=clock), None, None))
    try:
        with served_in_thread(
            server, host, port, name="lf-bulk-notify", what="the push receiver"
        ) as bound_port:  # fmt: skip
            yield receiver_url(host, bound_port, tls=False)
    finally:
        writer.close()
        store.close()
