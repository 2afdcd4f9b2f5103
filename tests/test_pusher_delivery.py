"""The sandbox pushes a signed Recharge Success event for every order it creates, to a real
`notify serve` receiver: retried while the receiver is down or refuses it, dropped after the last
try, re-sent under the `push_dup` fault, and durable across a restart of the sandbox."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from notifyhelp import KEY_HEX, KEY_ID
from pusherhelp import (
    RELAXED,
    active_iccids,
    create_orders,
    free_port,
    order,
    receiver_keys,
    store_home,
    target,
    wait_for,
)

from lf_bulk import wire
from lf_bulk.notify import export
from lf_bulk.notify.receiver import running_receiver
from lf_bulk.notify.store import PushStore
from lf_bulk.sandbox import pusher, seed
from lf_bulk.sandbox.faults import FaultSpec
from lf_bulk.sandbox.pusher import MAX_TRIES, RETRY_OFFSETS, Pusher, PushStatus
from lf_bulk.sandbox.server import running_sandbox
from lf_bulk.sandbox.state import SandboxState

FreshWorld = Callable[[Path, int], Path]
SIMS = 2_000
OTHER_KEY_HEX = "00112233445566778899aabbccddeeff"


def state_file(tmp_path: Path, fresh_world: FreshWorld) -> Path:
    return fresh_world(tmp_path / "sandbox.db", SIMS)


def settled(state: SandboxState) -> bool:
    return not pusher.counts(state)[PushStatus.QUEUED]


# ---------------------------------------------------------------- the schedule


def test_the_schedule_is_30_tries_within_24_hours() -> None:
    assert len(RETRY_OFFSETS) == MAX_TRIES == 30
    assert RETRY_OFFSETS[0] == 0
    gaps = [later - earlier for earlier, later in itertools.pairwise(RETRY_OFFSETS)]
    assert all(gap > 0 for gap in gaps) and gaps == sorted(gaps)
    assert 20 * 3600 < RETRY_OFFSETS[-1] < 24 * 3600


def test_a_failing_delivery_follows_the_schedule_then_is_dropped(
    tmp_path: Path, fresh_world: FreshWorld
) -> None:
    """A fake clock and a receiver that always answers 500: one try at each offset, no earlier."""
    now = [1_800_000_000.0]
    seen: list[float] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(now[0])
        return httpx.Response(500)

    with SandboxState(state_file(tmp_path, fresh_world), clock=lambda: now[0]) as state:
        state.queue_pushes_from_now()
        state.create_order(seed.PARTNER, order(0, active_iccids(state, 1)[0]))
        queued_at = now[0]
        sender = Pusher(
            state, target("http://127.0.0.1:9/"), clock=lambda: now[0],
            transport=httpx.MockTransport(refuse),
        )  # fmt: skip
        try:
            for offset in RETRY_OFFSETS:
                now[0] = queued_at + offset - 0.5
                assert sender.deliver_due() == 0 or offset == 0
                now[0] = queued_at + offset
                assert sender.deliver_due() == 1
            now[0] += 10 * 24 * 3600
            assert sender.deliver_due() == 0
        finally:
            sender.stop()
        (event,) = pusher.records(state)
    assert [t - queued_at for t in seen] == list(RETRY_OFFSETS)
    assert (event.status, event.tries, event.last_status) == (PushStatus.DROPPED, 30, 500)


# ---------------------------------------------------------------- the wire


def test_the_push_is_signed_so_that_the_receivers_code_verifies_it(
    tmp_path: Path, fresh_world: FreshWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caught: list[httpx.Request] = []

    def accept(request: httpx.Request) -> httpx.Response:
        caught.append(request)
        return httpx.Response(200)

    caplog.set_level(logging.DEBUG)
    path = state_file(tmp_path, fresh_world)
    with running_sandbox(path, RELAXED) as server:
        server.state.queue_pushes_from_now()
        totals = create_orders(server, 2)
        sender = Pusher(
            server.state, target("https://partner.example/push"),
            transport=httpx.MockTransport(accept),
        )  # fmt: skip
        try:
            assert sender.deliver_due() == 2
        finally:
            sender.stop()
        orders = {
            o["order_id"]: o for o in server.state.orders() if o["order_id"].startswith("LF9")
        }
    keys = receiver_keys()
    amounts = []
    for request in caught:
        assert str(request.url) == "https://partner.example/push"
        event = json.loads(request.content)
        headers = wire.read_push_headers(request.headers)
        assert isinstance(headers, wire.PushHeaders)
        assert wire.check_push_headers(headers, KEY_ID, now=time.time()) is None
        assert wire.verify_push_signature(event, headers, keys.keys)
        assert not wire.verify_push_signature(event, headers, receiver_keys(OTHER_KEY_HEX).keys)
        order = orders[event["data"]["order_id"]]
        assert event["eventType"] == "RECHARGE_SUCCESS"
        assert event["data"]["orderNo"] == order["purchase_order_id"]
        assert event["data"]["deviceCode"] == order["sim_id"]
        amounts.append((event["data"]["payCurrency"], Decimal(event["data"]["payAmount"])))
    assert sorted(amounts) == sorted((c, a) for c, a in _pairs(totals))
    assert KEY_HEX not in caplog.text and KEY_HEX not in repr(target("http://127.0.0.1:1/"))


def _pairs(totals: dict[str, Decimal]) -> list[tuple[str, Decimal]]:
    """create_orders(…, 2) makes 9.99 EUR and 10.00 GBP."""
    assert totals == {"EUR": Decimal("9.99"), "GBP": Decimal("10.00")}
    return [("EUR", Decimal("9.99")), ("GBP", Decimal("10.00"))]


# ---------------------------------------------------------------- end to end


def test_every_order_is_stored_once_with_resends_and_a_receiver_down_for_a_while(
    tmp_path: Path, fresh_world: FreshWorld
) -> None:
    port = free_port()
    home = store_home(tmp_path)
    faults = f"{RELAXED},push_dup=0.5,push_time_scale=0.0001,seed=7"
    with running_sandbox(
        state_file(tmp_path, fresh_world), faults, push=target(f"http://127.0.0.1:{port}/")
    ) as server:
        totals = create_orders(server, 12)
        state = server.state
        wait_for(lambda: all(e.tries >= 3 for e in pusher.records(state)), what="tries while down")
        assert pusher.counts(state) == {PushStatus.QUEUED: 12}
        with running_receiver(home, receiver_keys(), port=port):
            wait_for(lambda: settled(state), what="every push delivered")
        events = pusher.records(state)
    originals = [e for e in events if e.resend_of is None]
    resends = [e for e in events if e.resend_of is not None]
    assert len(originals) == 12 and resends, "push_dup=0.5 re-sent some"
    assert {e.status for e in events} == {PushStatus.DELIVERED}
    assert len({e.transaction_id for e in events}) == len(events)
    by_id = {e.id: e for e in originals}
    for resend in resends:
        assert resend.data == by_id[resend.resend_of].data
    assert all(e.tries >= 3 for e in originals)

    with PushStore.open(home) as store:
        stored = store.events()
        deliveries = store.delivery_count()
    assert sorted(p.order_id for p in stored) == sorted(e.order_id for e in originals)
    assert deliveries == len(events)  # every re-send arrived, and was stored once
    listing = export.load(home)
    assert {t.currency: t.amount for t in listing.totals} == totals


def test_a_wrong_key_is_refused_with_401_retried_and_dropped_after_the_last_try(
    tmp_path: Path, fresh_world: FreshWorld
) -> None:
    home = store_home(tmp_path)
    scale = 0.00001
    with (
        running_receiver(home, receiver_keys()) as url,
        running_sandbox(
            state_file(tmp_path, fresh_world),
            f"{RELAXED},push_time_scale={scale}",
            push=target(url, OTHER_KEY_HEX),
        ) as server,
    ):
        create_orders(server, 2)
        wait_for(
            lambda: pusher.counts(server.state) == {PushStatus.DROPPED: 2},
            what="both dropped",
        )
        events = pusher.records(server.state)
    for event in events:
        assert (event.tries, event.last_status, event.last_error) == (MAX_TRIES, 401, "HTTP 401")
        assert event.finished_at is not None
        assert event.finished_at - event.queued_at >= RETRY_OFFSETS[-1] * scale
    with PushStore.open(home) as store:
        assert store.events() == [] and store.delivery_count() == 0


def test_a_restarted_sandbox_delivers_what_it_had_queued(
    tmp_path: Path, fresh_world: FreshWorld
) -> None:
    path = state_file(tmp_path, fresh_world)
    home = store_home(tmp_path)
    down = target(f"http://127.0.0.1:{free_port()}/")
    with running_sandbox(path, f"{RELAXED},push_time_scale=0.01", push=down) as server:
        totals = create_orders(server, 3)
        wait_for(lambda: all(e.tries >= 1 for e in pusher.records(server.state)))
    restarted = f"{RELAXED},push_time_scale=0.0001"
    with ExitStack() as stack:
        url = stack.enter_context(running_receiver(home, receiver_keys()))
        again = stack.enter_context(running_sandbox(path, restarted, push=target(url)))
        wait_for(lambda: settled(again.state), what="delivered after the restart")
        assert pusher.counts(again.state) == {PushStatus.DELIVERED: 3}
    assert {t.currency: t.amount for t in export.load(home).totals} == totals


def test_the_embedded_sandbox_pushes_nothing(tmp_path: Path, fresh_world: FreshWorld) -> None:
    with running_sandbox(state_file(tmp_path, fresh_world), RELAXED) as server:
        create_orders(server, 1)
        assert server.pusher is None and not server.state.queue_pushes
        with server.state.reading() as db:
            assert db.execute("SELECT COUNT(*) FROM push_outbox").fetchone() == (0,)


def test_the_push_faults_are_parsed_and_described() -> None:
    spec = FaultSpec.parse("push_dup=0.25,push_time_scale=0.001")
    assert (spec.push_dup_rate, spec.push_time_scale) == (0.25, 0.001)
    assert FaultSpec.parse(spec.describe()) == spec
    for bad in ("push_dup=2", "push_time_scale=0", "push_time_scale=-1", "push_dup=x"):
        with pytest.raises(ValueError, match="push_"):
            FaultSpec.parse(bad)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "http://partner.example/push", "127.0.0.1:8443", "https:///x"]
)
def test_a_push_url_must_be_https_or_loopback_http(url: str) -> None:
    with pytest.raises(ValueError, match="push URL"):
        target(url)
