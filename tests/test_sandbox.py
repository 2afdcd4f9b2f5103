"""The sandbox speaks contract v1: over real sockets, signed with the client's own wire profile."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from httphelp import http_client, http_get, http_post

from jobs.cli import cli
from lf_bulk import iccid, signing, wire
from lf_bulk.models import Operation
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.app import RateLimiter
from lf_bulk.sandbox.faults import FAULT_KEYS, Fate, FaultDice, FaultSpec
from lf_bulk.sandbox.server import SandboxServer, running_sandbox
from lf_bulk.sandbox.state import Rules, SandboxState

P = wire.CONTRACT_V1
SIMS = 2_000  # a small world for the tests that build their own
MakeSandbox = Callable[..., SandboxServer]  # the `make_sandbox` fixture of conftest.py
# For tests about something other than rate limits: enough budget never to be throttled.
RELAXED = "rate=1000,concurrency=50"
FINAL = {"SUCCESS", "PARTIAL_SUCCESS", "FAILED"}


class Api:
    """Signed requests exactly as the client builds them, with a few shortcuts for tests."""

    def __init__(self, server: SandboxServer, partner: str = seed.PARTNER) -> None:
        self.server = server
        self.partner = partner
        self.http = http_client(base_url=server.base_url, timeout=10)

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        endpoint: wire.Endpoint,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        request = wire.build_request(
            P, endpoint, self.partner, path_params=path_params, params=params
        )
        return self.http.request(
            request.method, request.path, params=request.query, json=request.body
        )

    def ok(self, *args: Any) -> Any:
        response = self.call(*args)
        body = response.json()
        assert (response.status_code, body["code"]) == (200, wire.CODE_OK), body
        return body["data"]

    def code(self, *args: Any) -> str:
        return str(self.call(*args).json()["code"])

    def submit(self, operation: Operation, group_id: str, iccids: list[str]) -> str:
        endpoint = P.add if operation is Operation.ADD else P.remove
        data = self.ok(endpoint, {"group_id": group_id}, {"iccids": iccids})
        assert data["accepted"] == len(iccids)
        return str(data["request_id"])

    def result(self, request_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.ok(P.async_result, {"request_id": request_id})
        return data

    def wait_final(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = self.result(request_id)
            if data["status"] in FINAL:
                return data
            assert time.monotonic() < deadline, f"{request_id} still {data['status']}"
            time.sleep(0.03)

    def orders(self, **keys: str) -> httpx.Response:
        return self.call(P.order, None, keys)


def reasons(result: Mapping[str, Any]) -> dict[str, str]:
    return {r["iccid"]: r["reason_code"] or r["status"] for r in result["results"]}


Connect = Callable[[SandboxServer], Api]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """`connect(server)`: an `Api` on that server, closed after the test."""
    clients: list[Api] = []

    def open_api(server: SandboxServer) -> Api:
        clients.append(Api(server))
        return clients[-1]

    yield open_api
    for client in clients:
        client.close()


@pytest.fixture
def api(make_sandbox: MakeSandbox, connect: Connect) -> Api:
    return connect(make_sandbox(RELAXED))


@pytest.fixture
def state(api: Api) -> SandboxState:
    return api.server.state


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server for the tests that only read, or whose requests are refused: it saves time."""
    path = tmp_path_factory.mktemp("reader") / "sandbox.db"
    with running_sandbox(path, RELAXED, sims=SIMS) as server:
        client = Api(server)
        yield client
        client.close()


def raw_get(server: SandboxServer, path: str, params: dict[str, str]) -> httpx.Response:
    return http_get(server.base_url + path, params=params, timeout=10)


def signed(params: dict[str, str], **path_params: str) -> dict[str, str]:
    return {**params, "sign": signing.sign({**params, **path_params})}


# ---------------------------------------------------------------- global parameters


def test_wrong_sign_is_refused_with_403(sandbox: SandboxServer) -> None:
    request = wire.build_request(P, P.groups, seed.PARTNER)
    assert request.query is not None
    tampered = {**request.query, "sign": "0" * 32}
    response = raw_get(sandbox, request.path, tampered)
    assert response.status_code == 403
    assert response.json() == wire.make_envelope(wire.CODE_BAD_SIGNATURE, "signature mismatch")


def test_path_parameters_are_part_of_the_signature(reader: Api) -> None:
    request = wire.build_request(P, P.members, seed.PARTNER, path_params={"group_id": "G1000001"})
    assert request.query is not None
    # The same signed query sent to another group's path must not verify.
    response = raw_get(reader.server, request.path.replace("G1000001", "G1000002"), request.query)
    assert response.json()["code"] == wire.CODE_BAD_SIGNATURE


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"version": "3.0"}, wire.CODE_INVALID_PARAMETER),
        ({"partnerCode": seed.PARTNER, "version": "2.0"}, wire.CODE_INVALID_PARAMETER),
        ({"partnerCode": "P123456", "version": "3.0"}, wire.CODE_UNKNOWN_PARTNER),
        ({"partnerCode": seed.OTHER_PARTNER, "version": "3.0"}, wire.CODE_UNKNOWN_PARTNER),
    ],
)
def test_global_parameter_errors(reader: Api, params: dict[str, str], code: str) -> None:
    response = raw_get(reader.server, P.groups.path, signed(params))
    assert (response.status_code, response.json()["code"]) == (200, code)


def test_unknown_endpoint_answers_an_envelope_and_is_never_faulted(
    make_sandbox: MakeSandbox,
) -> None:
    server = make_sandbox("5xx=1")
    response = http_get(server.base_url + "/mall/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == wire.CODE_INVALID_PARAMETER


# ---------------------------------------------------------------- groups and members


def test_groups_lists_only_the_partners_groups_with_plans(reader: Api) -> None:
    groups = {g["group_id"]: g for g in reader.ok(P.groups)}
    assert seed.FOREIGN_GROUP not in groups
    assert set(groups) == {p.group_id for p in seed.GROUP_PLANS if p.partner_code == seed.PARTNER}
    assert groups[seed.EMPTY_GROUP]["sim_count"] == 0
    for group_id, group in groups.items():
        assert group["sim_count"] == len(reader.server.state.members(group_id))
        assert group["bundles"] and group["bundles"][0]["bundle_id"].startswith("DP")
        assert isinstance(group["bundles"][0]["data_mb"], int)


def test_paging_returns_every_member_once_in_iccid_order(api: Api, state: SandboxState) -> None:
    members = sorted(state.ungrouped_sims(257))
    state.set_members(seed.PILOT_GROUP, list(reversed(members)))
    seen: list[str] = []
    for page_no in range(1, 7):
        page = api.ok(
            P.members, {"group_id": seed.PILOT_GROUP}, {"page_no": page_no, "page_size": 50}
        )
        assert (page["group_id"], page["total"], page["page_no"], page["page_size"]) == (
            seed.PILOT_GROUP,
            257,
            page_no,
            50,
        )
        seen += page["iccids"]
    assert seen == members
    default = api.ok(P.members, {"group_id": seed.PILOT_GROUP})
    assert (default["page_no"], default["page_size"], len(default["iccids"])) == (1, 100, 100)


@pytest.mark.parametrize("page_size", [0, 1001, "ten"])
def test_page_size_out_of_range_is_1001(reader: Api, page_size: object) -> None:
    params = {"page_no": 1, "page_size": page_size}
    assert (
        reader.code(P.members, {"group_id": seed.DEMO_GROUP}, params) == wire.CODE_INVALID_PARAMETER
    )


@pytest.mark.parametrize("group_id", [seed.FOREIGN_GROUP, "G424242"])
def test_unknown_or_foreign_group_is_1004(reader: Api, group_id: str) -> None:
    assert reader.code(P.members, {"group_id": group_id}) == wire.CODE_GROUP_NOT_FOUND
    add = {"iccids": reader.server.state.ungrouped_sims(1)}
    assert reader.code(P.add, {"group_id": group_id}, add) == wire.CODE_GROUP_NOT_FOUND


# ---------------------------------------------------------------- add / remove validation


def test_more_iccids_than_the_limit_is_1005_with_the_limit(api: Api, state: SandboxState) -> None:
    iccids = state.ungrouped_sims(501)
    response = api.call(P.add, {"group_id": seed.DEMO_GROUP}, {"iccids": iccids})
    assert response.json() == wire.make_envelope(
        wire.CODE_TOO_MANY_ICCIDS,
        "too many ICCIDs: 501 sent, at most 500 per request",
        {"max_iccids": 500},
    )
    assert api.submit(Operation.ADD, seed.DEMO_GROUP, iccids[:500])


@pytest.mark.parametrize("iccids", [[], [12345], "8944500000396693786", [""], None], ids=repr)
def test_invalid_iccid_lists_are_1001(reader: Api, iccids: object) -> None:
    body = {"partnerCode": seed.PARTNER, "version": "3.0", "iccids": iccids}
    body["sign"] = signing.sign({**body, "group_id": seed.DEMO_GROUP})
    path = P.add.path.format(group_id=seed.DEMO_GROUP)
    response = http_post(reader.server.base_url + path, json=body)
    assert response.json()["code"] == wire.CODE_INVALID_PARAMETER


def test_duplicate_iccids_queue_nothing(api: Api, state: SandboxState) -> None:
    free = state.ungrouped_sims(2)
    params = {"iccids": [*free, free[0]]}
    assert api.code(P.add, {"group_id": seed.EMPTY_GROUP}, params) == wire.CODE_INVALID_PARAMETER
    time.sleep(0.2)
    assert state.members(seed.EMPTY_GROUP) == []


# ---------------------------------------------------------------- asynchronous operations


def test_operation_goes_pending_processing_then_final(
    make_sandbox: MakeSandbox, connect: Connect
) -> None:
    api = connect(make_sandbox(f"{RELAXED},async=1s"))
    free = api.server.state.ungrouped_sims(3)
    request_id = api.submit(Operation.ADD, seed.EMPTY_GROUP, free)
    statuses: list[str] = []
    while not statuses or statuses[-1] not in FINAL:
        data = api.result(request_id)
        if not statuses or statuses[-1] != data["status"]:
            statuses.append(data["status"])
        assert ("results" in data) == (data["status"] in FINAL)
        time.sleep(0.05)
    assert statuses == ["PENDING", "PROCESSING", "SUCCESS"]
    assert (data["operation"], data["group_id"], data["total"]) == ("ADD", seed.EMPTY_GROUP, 3)
    assert (data["succeeded"], data["failed"]) == (3, 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["finished_at"])
    assert data["created_at"] <= data["finished_at"]
    assert api.server.state.members(seed.EMPTY_GROUP) == sorted(free)


def test_add_gives_each_sim_its_reason(api: Api, state: SandboxState) -> None:
    free = state.ungrouped_sims(2)
    own_member = state.members(seed.DEMO_GROUP)[0]
    other_member = state.members(seed.FLEET_GROUP)[0]
    foreign = state.members(seed.FOREIGN_GROUP)[0]
    unknown = seed.unseeded_iccid(1)
    request_id = api.submit(
        Operation.ADD, seed.DEMO_GROUP, [*free, own_member, other_member, foreign, unknown]
    )
    result = api.wait_final(request_id)
    assert reasons(result) == {
        free[0]: "SUCCESS",
        free[1]: "SUCCESS",
        own_member: wire.REASON_ALREADY_IN_GROUP,
        other_member: wire.REASON_IN_OTHER_GROUP,
        foreign: wire.REASON_SIM_NOT_OWNED,
        unknown: wire.REASON_SIM_NOT_FOUND,
    }
    assert (result["status"], result["succeeded"], result["failed"]) == ("PARTIAL_SUCCESS", 2, 4)
    assert all(r["reason"] for r in result["results"] if r["status"] == "FAILED")
    assert [state.group_of(i) for i in free] == [seed.DEMO_GROUP] * 2
    assert state.group_of(other_member) == seed.FLEET_GROUP
    assert state.group_of(foreign) == seed.FOREIGN_GROUP


def test_remove_gives_each_sim_its_reason(api: Api, state: SandboxState) -> None:
    member = state.members(seed.DEMO_GROUP)[0]
    other_member = state.members(seed.FLEET_GROUP)[0]
    free = state.ungrouped_sims(1)[0]
    foreign = state.members(seed.FOREIGN_GROUP)[0]
    request_id = api.submit(
        Operation.REMOVE, seed.DEMO_GROUP, [member, other_member, free, foreign]
    )
    result = api.wait_final(request_id)
    assert reasons(result) == {
        member: "SUCCESS",
        other_member: wire.REASON_NOT_IN_GROUP,
        free: wire.REASON_NOT_IN_GROUP,
        foreign: wire.REASON_SIM_NOT_OWNED,
    }
    assert state.group_of(member) is None
    assert state.group_of(other_member) == seed.FLEET_GROUP
    again = api.wait_final(api.submit(Operation.REMOVE, seed.DEMO_GROUP, [member]))
    assert (again["status"], reasons(again)) == ("FAILED", {member: wire.REASON_NOT_IN_GROUP})


def test_a_sim_belongs_to_one_group_and_moves_by_remove_then_add(
    api: Api, state: SandboxState
) -> None:
    sim = state.ungrouped_sims(1)[0]
    assert api.wait_final(api.submit(Operation.ADD, seed.PILOT_GROUP, [sim]))["status"] == "SUCCESS"
    refused = api.wait_final(api.submit(Operation.ADD, seed.STAFF_GROUP, [sim]))
    assert reasons(refused) == {sim: wire.REASON_IN_OTHER_GROUP}
    assert state.group_of(sim) == seed.PILOT_GROUP
    api.wait_final(api.submit(Operation.REMOVE, seed.PILOT_GROUP, [sim]))
    moved = api.wait_final(api.submit(Operation.ADD, seed.STAFF_GROUP, [sim]))
    assert moved["status"] == "SUCCESS"
    assert state.group_of(sim) == seed.STAFF_GROUP


def test_sims_of_an_unfinished_operation_are_locked(
    make_sandbox: MakeSandbox, connect: Connect
) -> None:
    api = connect(make_sandbox(f"{RELAXED},async=400ms"))
    a, b, c = api.server.state.ungrouped_sims(3)
    first = api.submit(Operation.ADD, seed.PILOT_GROUP, [a, b])
    second = api.submit(Operation.ADD, seed.STAFF_GROUP, [b, c])
    assert reasons(api.wait_final(first)) == {a: "SUCCESS", b: "SUCCESS"}
    assert reasons(api.wait_final(second)) == {b: wire.REASON_SIM_LOCKED, c: "SUCCESS"}
    # Once the first operation is over, the SIM is free for the next one.
    third = api.wait_final(api.submit(Operation.REMOVE, seed.PILOT_GROUP, [b]))
    assert reasons(third) == {b: "SUCCESS"}


def test_injected_sim_failures_change_nothing(make_sandbox: MakeSandbox, connect: Connect) -> None:
    api = connect(make_sandbox(f"{RELAXED},sim_locked=0.5,sim_internal=0.5,seed=3"))
    free = api.server.state.ungrouped_sims(40)
    result = api.wait_final(api.submit(Operation.ADD, seed.EMPTY_GROUP, free))
    counts = collections.Counter(reasons(result).values())
    assert set(counts) == {wire.REASON_SIM_LOCKED, wire.REASON_INTERNAL}
    assert result["status"] == "FAILED"
    assert api.server.state.members(seed.EMPTY_GROUP) == []


def test_expired_or_unknown_request_id_is_1006(make_sandbox: MakeSandbox, connect: Connect) -> None:
    api = connect(make_sandbox(f"{RELAXED},expiry=500ms,async=20ms"))
    request_id = api.submit(Operation.ADD, seed.EMPTY_GROUP, api.server.state.ungrouped_sims(1))
    api.wait_final(request_id)
    time.sleep(0.6)
    assert api.code(P.async_result, {"request_id": request_id}) == wire.CODE_REQUEST_ID_UNKNOWN
    assert api.code(P.async_result, {"request_id": "nope"}) == wire.CODE_REQUEST_ID_UNKNOWN


# ---------------------------------------------------------------- orders


def single_orders(state: SandboxState) -> list[dict[str, Any]]:
    """Orders whose purchase_order_id is their own, on SIMs with a single order."""
    orders = state.orders(seed.PARTNER)
    per_po = collections.Counter(o["purchase_order_id"] for o in orders)
    per_sim = collections.Counter(o["sim_id"] for o in orders)
    return [o for o in orders if per_po[o["purchase_order_id"]] == 1 and per_sim[o["sim_id"]] == 1]


def test_order_lookup_precedence(reader: Api) -> None:
    a, b, c = single_orders(reader.server.state)[:3]
    by_all = reader.orders(
        purchase_order_id=a["purchase_order_id"], order_id=b["order_id"], sim_id=c["sim_id"]
    )
    assert by_all.json()["data"]["orders"] == [a]
    assert reader.orders(order_id=b["order_id"], sim_id=c["sim_id"]).json()["data"]["orders"] == [b]
    # An empty key does not count: the next non-empty one wins.
    params = signed(
        {
            "partnerCode": seed.PARTNER,
            "version": "3.0",
            "purchase_order_id": "",
            "order_id": b["order_id"],
        }
    )
    assert raw_get(reader.server, P.order.path, params).json()["data"]["orders"] == [b]
    assert reader.code(P.order) == wire.CODE_INVALID_PARAMETER


def test_orders_of_a_sim_come_newest_first_with_exact_amounts(reader: Api) -> None:
    per_sim = collections.Counter(o["sim_id"] for o in reader.server.state.orders(seed.PARTNER))
    sim, count = per_sim.most_common(1)[0]
    response = reader.orders(sim_id=sim)
    orders = response.json()["data"]["orders"]
    assert len(orders) == count > 1
    assert [o["created_at"] for o in orders] == sorted(
        (o["created_at"] for o in orders), reverse=True
    )
    for order in orders:
        assert isinstance(order["amount"], str)
        assert Decimal(order["amount"]).as_tuple().exponent == -2
        assert isinstance(order["periods"], int)
    assert '"amount":"' in response.text


def test_unknown_fields_of_orders_are_served(reader: Api) -> None:
    with_channel = next(o for o in reader.server.state.orders(seed.PARTNER) if "channel" in o)
    served = reader.orders(order_id=with_channel["order_id"]).json()["data"]["orders"]
    assert served[0]["channel"] == with_channel["channel"]


def test_duplicated_purchase_order_id_gives_the_latest_paid_order(reader: Api) -> None:
    groups = collections.defaultdict(list)
    for order in reader.server.state.orders(seed.PARTNER):
        groups[order["purchase_order_id"]].append(order)
    duplicated = {po: orders for po, orders in groups.items() if len(orders) > 1}
    with_paid = [
        (po, orders)
        for po, orders in duplicated.items()
        if sum(o["pay_status"] == "PAID" for o in orders) == 2
    ]
    without_paid = [
        (po, orders)
        for po, orders in duplicated.items()
        if all(o["pay_status"] != "PAID" for o in orders)
    ]
    assert with_paid and without_paid
    for po, orders in (with_paid[0], without_paid[0]):
        paid = [o for o in orders if o["pay_status"] == "PAID"]
        expected = max(paid or orders, key=lambda o: (o["paid_at"], o["created_at"]))
        assert reader.orders(purchase_order_id=po).json()["data"]["orders"] == [expected]


def test_missing_and_foreign_orders_are_1007(reader: Api) -> None:
    foreign = reader.server.state.orders(seed.OTHER_PARTNER)[0]
    assert reader.orders(order_id=foreign["order_id"]).json()["code"] == wire.CODE_ORDER_NOT_FOUND
    assert reader.orders(sim_id=seed.unseeded_iccid(5)).json()["code"] == wire.CODE_ORDER_NOT_FOUND


# ---------------------------------------------------------------- rate limits


def test_a_burst_is_throttled_with_retry_after(make_sandbox: MakeSandbox, connect: Connect) -> None:
    # A bucket of 10 refilled at 1 a second: 15 quick requests overflow it unless they take 5 s
    # (at 10 a second, a loaded machine could take the 1 s that refills it).
    api = connect(make_sandbox("rate=1,burst=10"))
    started = time.monotonic()
    responses = [api.call(P.groups) for _ in range(15)]
    assert time.monotonic() - started < 4.0
    throttled = [r for r in responses if r.status_code == 429]
    assert throttled, [r.status_code for r in responses]
    assert [r.status_code for r in responses[:10]] == [200] * 10
    for response in throttled:
        assert response.json()["code"] == wire.CODE_RATE_LIMITED
        assert int(response.headers["Retry-After"]) >= 1


def test_requests_100ms_apart_are_never_throttled(sandbox: SandboxServer, connect: Connect) -> None:
    api = connect(sandbox)
    statuses = []
    for _ in range(15):
        started = time.monotonic()
        statuses.append(api.call(P.groups).status_code)
        time.sleep(max(0.0, started + 0.1 - time.monotonic()))
    assert statuses == [200] * 15


def test_more_than_three_requests_in_flight_are_throttled(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox("latency=300ms")
    request = wire.build_request(P, P.groups, seed.PARTNER)

    async def four_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            calls = [http.get(request.path, params=request.query) for _ in range(4)]
            return await asyncio.gather(*calls)

    statuses = sorted(r.status_code for r in asyncio.run(four_at_once()))
    assert statuses == [200, 200, 200, 429]


def test_rate_limiter_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=10, capacity=10, concurrency=3, clock=lambda: now[0])
    for _ in range(10):
        assert limiter.acquire("ip") is None
        limiter.release("ip")
    assert limiter.acquire("ip") == 1
    assert limiter.acquire("other") is None
    now[0] += 0.1
    assert limiter.acquire("ip") is None
    assert limiter.acquire("ip") == 1


# ---------------------------------------------------------------- faults


def test_drop_loses_the_answer_but_the_work_is_done(
    make_sandbox: MakeSandbox, connect: Connect
) -> None:
    server = make_sandbox(f"{RELAXED},drop=1")
    api = connect(server)
    free = server.state.ungrouped_sims(3)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.call(P.add, {"group_id": seed.EMPTY_GROUP}, {"iccids": free})
    (entry,) = server.state.mutation_log()
    assert entry.dropped and entry.request_id and entry.code == wire.CODE_OK
    assert entry.iccids == tuple(free)
    deadline = time.monotonic() + 3
    while server.state.members(seed.EMPTY_GROUP) != sorted(free):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def statuses_under(server: SandboxServer, requests: int = 30) -> list[int]:
    request = wire.build_request(P, P.groups, seed.PARTNER)
    with http_client(base_url=server.base_url) as http:
        return [http.get(request.path, params=request.query).status_code for _ in range(requests)]


def test_the_same_seed_gives_the_same_faults(make_sandbox: MakeSandbox) -> None:
    spec = f"{RELAXED},5xx=0.4,429=0.2"
    first = statuses_under(make_sandbox(f"{spec},seed=7"))
    again = statuses_under(make_sandbox(f"{spec},seed=7"))
    other = statuses_under(make_sandbox(f"{spec},seed=8"))
    assert first == again != other
    assert {200, 429, 502, 503} <= set(first)


def test_5xx_faults_look_like_a_server_and_a_proxy(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(f"{RELAXED},5xx=1,seed=1")
    request = wire.build_request(P, P.groups, seed.PARTNER)
    with http_client(base_url=server.base_url) as http:
        responses = {
            r.status_code: r
            for r in (http.get(request.path, params=request.query) for _ in range(12))
        }
    assert set(responses) == {502, 503}
    assert responses[503].json()["code"] == wire.CODE_INTERNAL
    assert responses[502].headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in responses[502].text


def test_latency_delays_every_answer(make_sandbox: MakeSandbox, connect: Connect) -> None:
    api = connect(make_sandbox(f"{RELAXED},latency=250ms"))
    started = time.monotonic()
    api.ok(P.groups)
    assert time.monotonic() - started >= 0.25


def test_fault_dice_repeat_with_a_seed() -> None:
    spec = FaultSpec.parse("5xx=0.3,429=0.3,drop=0.3,seed=42")

    def rolls() -> list[Fate]:
        dice = FaultDice(spec)
        return [dice.roll() for _ in range(50)]

    first = rolls()
    assert first == rolls()
    assert any(f.dropped for f in first) and any(f.error_status for f in first)
    assert any(f.throttled for f in first) and not all(f.throttled for f in first)


def test_fault_spec_parses_every_key() -> None:
    spec = FaultSpec.parse(
        "latency=50ms,5xx=0.3,429=10%,drop=0.05,async=5-30s,sim_locked=0.02,sim_internal=0.01,"
        "expiry=30s,max_iccids=200,rate=20,burst=5,concurrency=4,partners=P000270+P000999,seed=42"
    )
    assert spec == FaultSpec(
        latency=0.05,
        error_rate=0.3,
        throttle_rate=0.1,
        drop_rate=0.05,
        async_delay=(5.0, 30.0),
        sim_locked_rate=0.02,
        sim_internal_rate=0.01,
        expiry=30.0,
        max_iccids=200,
        rate=20.0,
        burst=5.0,
        concurrency=4,
        partners=("P000270", "P000999"),
        seed=42,
    )
    assert FaultSpec.parse(spec.describe()) == spec
    assert FaultSpec.parse("async=200ms-1s").async_delay == (0.2, 1.0)
    assert FaultSpec.parse(None) == FaultSpec.parse("") == FaultSpec()
    assert FaultSpec().describe() == "none"


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("latency=fast", "latency"),
        ("5xx=1.5", "5xx"),
        ("bogus=1", "bogus"),
        ("async=30-5s", "async"),
        ("max_iccids=0", "max_iccids"),
        ("rate=0", "rate"),
        ("seed=x", "seed"),
        ("drop", "drop"),
    ],
)
def test_bad_fault_specs_name_the_key_and_what_is_allowed(spec: str, key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(key))) as raised:
        FaultSpec.parse(spec)
    if key in FAULT_KEYS:
        assert FAULT_KEYS[key] in str(raised.value)
    else:
        assert "allowed keys: latency" in str(raised.value)


def test_sim_fault_rates_may_not_exceed_one() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultSpec.parse("sim_locked=0.6,sim_internal=0.6")


# ---------------------------------------------------------------- state and its file


def test_state_survives_a_restart_and_due_work_completes_while_down(
    tmp_path: Path, connect: Connect
) -> None:
    path = tmp_path / "world.db"
    with running_sandbox(path, f"{RELAXED},async=300ms", sims=SIMS) as server:
        api = connect(server)
        free = server.state.ungrouped_sims(2)
        server.state.set_members(seed.EMPTY_GROUP, free[:1])
        request_id = api.submit(Operation.ADD, seed.PILOT_GROUP, free[1:])
        assert api.result(request_id)["status"] == "PENDING"
    time.sleep(0.35)
    with running_sandbox(path, RELAXED, sims=SIMS) as server:
        api = connect(server)
        assert api.result(request_id)["status"] == "SUCCESS"
        assert server.state.members(seed.EMPTY_GROUP) == free[:1]
        assert server.state.group_of(free[1]) == seed.PILOT_GROUP
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)


def test_two_servers_on_one_state_file_see_one_world(
    make_sandbox: MakeSandbox, tmp_path: Path, connect: Connect
) -> None:
    path = tmp_path / "shared.db"
    one = connect(make_sandbox(RELAXED, state_path=path))
    two = connect(make_sandbox(RELAXED, state_path=path))
    free = one.server.state.ungrouped_sims(2)
    request_id = one.submit(Operation.ADD, seed.STAFF_GROUP, free)
    assert two.wait_final(request_id)["status"] == "SUCCESS"
    page = one.ok(P.members, {"group_id": seed.STAFF_GROUP}, {"page_size": 1000})
    assert set(free) <= set(page["iccids"])


def test_operations_apply_from_the_clock_in_any_process(tmp_path: Path) -> None:
    now = [1_000_000.0]
    rules = Rules(async_delay=(10.0, 10.0))
    path = tmp_path / "clock.db"
    with (
        SandboxState(path, rules=rules, sims=500, clock=lambda: now[0]) as first,
        SandboxState(path, rules=rules, sims=500, clock=lambda: now[0]) as second,
    ):
        free = first.ungrouped_sims(2)
        request_id = first.submit(seed.PARTNER, Operation.ADD, seed.EMPTY_GROUP, free)["request_id"]
        assert first.async_result(seed.PARTNER, request_id)["status"] == "PENDING"
        now[0] += 5
        assert second.async_result(seed.PARTNER, request_id)["status"] == "PROCESSING"
        assert first.members(seed.EMPTY_GROUP) == []
        now[0] += 5
        assert second.members(seed.EMPTY_GROUP) == sorted(free)
        result = first.async_result(seed.PARTNER, request_id)
        assert (result["status"], result["finished_at"]) == ("SUCCESS", "1970-01-12T13:46:50Z")


def test_a_500_iccid_operation_is_applied_whole_once_due(tmp_path: Path) -> None:
    now = [1_000_000.0]
    with SandboxState(tmp_path / "fast.db", sims=5_000, clock=lambda: now[0]) as state:
        free = state.ungrouped_sims(500)
        state.submit(seed.PARTNER, Operation.ADD, seed.EMPTY_GROUP, free)
        assert state.apply_due() == 0
        now[0] += 5
        assert state.apply_due() == 1
        assert sorted(state.members(seed.EMPTY_GROUP)) == sorted(free)
        assert state.apply_due() == 0


def test_mutation_log_records_refused_requests_too(api: Api, state: SandboxState) -> None:
    iccids = state.ungrouped_sims(501)
    api.call(P.add, {"group_id": seed.DEMO_GROUP}, {"iccids": iccids})
    api.call(P.remove, {"group_id": seed.DEMO_GROUP}, {"iccids": iccids[:2]})
    refused, accepted = state.mutation_log()
    assert (refused.method, refused.group_id, refused.iccid_count) == ("POST", seed.DEMO_GROUP, 501)
    assert (refused.code, refused.request_id, refused.http_status) == (
        wire.CODE_TOO_MANY_ICCIDS,
        "",
        200,
    )
    assert (accepted.method, accepted.code, accepted.iccids) == (
        "DELETE",
        wire.CODE_OK,
        tuple(iccids[:2]),
    )
    assert accepted.request_id and not accepted.dropped


# ---------------------------------------------------------------- seed


def test_the_seeded_world_is_deterministic_and_valid() -> None:
    world = seed.build_world(SIMS)
    assert world == seed.build_world(SIMS)
    iccids = [sim[0] for sim in world.sims]
    assert len(set(iccids)) == len(iccids) == SIMS
    assert all(reason is None for _, reason in iccid.validate_texts(iccids))
    assert {len(i) for i in iccids} == {19, 20}
    sizes = collections.Counter(sim[2] for sim in world.sims if sim[2])
    assert sizes == {k: v for k, v in seed.group_sizes(SIMS).items() if v}


def test_the_full_world_has_the_promised_shape(default_world: seed.World) -> None:
    world = default_world  # built once per session (conftest.py)
    owners = collections.Counter(sim[1] for sim in world.sims)
    sizes = collections.Counter(sim[2] for sim in world.sims)
    assert len(world.sims) >= 150_000 and owners[seed.OTHER_PARTNER] == 1_000
    assert sizes[seed.DEMO_GROUP] == 5_000 and seed.EMPTY_GROUP not in sizes
    assert sizes[None] > len(world.sims) / 2
    orders = [o.order for o in world.orders]
    assert len(orders) >= 6_000
    assert {o["currency"] for o in orders} == {"GBP", "EUR", "USD"}
    assert {o["pay_status"] for o in orders} == {"PAID", "UNPAID", "FAILED", "REFUNDED"}
    assert all(re.fullmatch(r"\d+\.\d\d", o["amount"]) for o in orders)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", o["created_at"]) for o in orders)
    assert any("channel" in o for o in orders)
    assert len({o["purchase_order_id"] for o in orders}) < len(orders)


# ---------------------------------------------------------------- command line


def test_serve_rejects_a_bad_fault_spec_as_a_usage_error(tmp_path: Path) -> None:
    # Through the root command: a subcommand invoked on its own would make click cache a help
    # option without the root's `-h`, and docs/cli.md rendered later in this process would differ.
    args = ["--home", str(tmp_path / "h"), "sandbox", "serve", "--state", str(tmp_path / "s.db")]
    result = CliRunner().invoke(cli, [*args, "--faults", "5xx=lots"])
    assert result.exit_code == 2
    assert "'5xx'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.db").exists()


def test_serve_runs_a_server_until_interrupted(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from jobs.sandbox import sandbox; sandbox()", "serve"]
    options = [
        "--port",
        "0",
        "--state",
        str(tmp_path / "s.db"),
        "--sims",
        "500",
        "--faults",
        "seed=1",
    ]
    process = subprocess.Popen(
        command + options, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    )
    try:
        lines = read_lines_until(process, "listening on ", timeout=20)
        assert "no real SIM" in lines[0]
        url = re.search(r"listening on (http://\S+)", lines[-1])
        assert url, lines
        request = wire.build_request(P, P.groups, seed.PARTNER)
        response = http_get(url[1] + request.path, params=request.query, timeout=10)
        assert response.json()["code"] == wire.CODE_OK
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def read_lines_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if marker in line:
                return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout)
    assert lines and marker in lines[-1], lines
    return lines
