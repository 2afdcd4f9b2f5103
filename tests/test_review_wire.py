"""Adversarial review of the wire layer: ids that could still reach a wrong path, API text that
could still reach a terminal or a file raw. Each hole found is pinned here.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from httphelp import http_get

from lf_bulk import errors, wire
from lf_bulk.client import MAX_RETRY_AFTER_SECONDS, LinksfieldClient
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.server import SandboxServer


def _client(answer: Any, seen: list[httpx.Request]) -> LinksfieldClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer)

    return LinksfieldClient(
        "https://api.test/topup",
        "P000270",
        transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 3, sleep=lambda seconds: None),
        sleep=lambda seconds: None,
    )


# ---------------------------------------------------------------- an empty id is no path segment


def test_an_empty_path_parameter_is_refused_not_sent_as_a_double_slash() -> None:
    # Repro: build_request(..., path_params={"group_id": ""}) gave /mall/bundle-groups//sims.
    with pytest.raises(errors.InputError, match="empty"):
        wire.encode_path_param("")
    with pytest.raises(errors.InputError, match="group_id"):
        wire.build_request(
            wire.CONTRACT_V1, wire.CONTRACT_V1.remove, "P1", path_params={"group_id": ""}
        )


@pytest.mark.parametrize("call", ["members", "remove", "poll"])
def test_an_empty_id_from_a_journal_or_a_server_list_sends_nothing(call: str) -> None:
    # A group listed without an id (reconcile --all-groups reads every group) or a journal batch
    # whose request id is gone (the engine polls `request_id or ""`).
    seen: list[httpx.Request] = []
    ok = {"code": "0000", "message": "", "data": {"iccids": [], "total": 0}}
    with _client(ok, seen) as client, pytest.raises(errors.InputError):
        if call == "members":
            client.list_members("")
        elif call == "remove":
            client.remove_sims("", ["89852420180910340793"])
        else:
            client.async_result("")
    assert seen == []


# ---------------------------------------------------------------- request ids the server gives


@pytest.mark.parametrize(
    "request_id",
    ["../../mall/bundle-groups/G1/sims", "r1/x", "\x1b[2Jr1", "r1?x=1", "..", "R" * 65, "r 1"],
    ids=repr,
)
def test_a_request_id_from_the_server_that_is_no_id_is_an_envelope_error(request_id: str) -> None:
    # Repro: a submission answered with request_id "r1/x" was journaled, shown by `runs show`
    # (which `ops status` then refuses) and polled. Now it is an unusable answer: the batch stays
    # "sending" and a resume settles it by membership, as for any answer we cannot read.
    seen: list[httpx.Request] = []
    answer = {"code": "0000", "message": "", "data": {"request_id": request_id, "accepted": 1}}
    with _client(answer, seen) as client, pytest.raises(errors.EnvelopeError) as raised:
        client.add_sims("G1", ["89852420180910340793"])
    message = str(raised.value)
    assert "request_id" in message
    assert "\x1b" not in message and len(message) < 300
    assert len(seen) == 1  # never retried: the server may have taken the batch


def test_a_well_formed_request_id_from_the_server_is_kept() -> None:
    seen: list[httpx.Request] = []
    rid = "6f1c1f3e-8c1d-4c55-9f0e-1a2b3c4d5e6f"
    answer = {"code": "0000", "message": "", "data": {"request_id": rid, "accepted": 1}}
    with _client(answer, seen) as client:
        assert client.add_sims("G1", ["89852420180910340793"]).request_id == rid


# ---------------------------------------------------------------- text that breaks lines or order


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u061c"], ids=repr)
def test_line_separators_and_the_arabic_letter_mark_are_made_visible(char: str) -> None:
    # U+2028/U+2029 end a line in editors and log viewers (a forged log line); U+061C is a bidi
    # control like the U+200E/U+200F already escaped.
    cleaned = wire.clean_text(f"ok{char}ERROR forged")
    assert char not in cleaned
    assert f"\\u{ord(char):04x}" in cleaned
    envelope = wire.parse_envelope({"code": "1001", "message": f"bad{char}x", "data": None})
    assert envelope is not None and char not in envelope.message


# ---------------------------------------------------------------- numbers JSON allows


@pytest.mark.parametrize("number", ["1e400", "-1e400", "Infinity", "-Infinity", "NaN"])
def test_an_infinite_count_from_the_server_is_no_traceback(number: str) -> None:
    # Repro: {"total": 1e400} (json reads it as inf) raised OverflowError out of member_page,
    # a traceback for `groups members`, `reconcile` and every membership check.
    bodies = {
        "members": f'{{"code":"0000","data":{{"iccids":["8944500003842253940"],"total":{number}}}}}',
        "groups": f'{{"code":"0000","data":[{{"group_id":"G1","sim_count":{number}}}]}}',
    }
    for what, body in bodies.items():
        envelope = wire.parse_envelope(wire.decode_json(body))
        assert envelope is not None
        if what == "members":
            page = wire.parse_member_page(envelope.data)
            assert page.iccids == ("8944500003842253940",) and page.total >= 0
        else:
            (group,) = wire.parse_groups(envelope.data)
            assert group.group_id == "G1" and group.sim_count == 0


# ---------------------------------------------------------------- digits that int() refuses


def _throttling_client(retry_after: bytes, slept: list[float]) -> LinksfieldClient:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"code": "1429", "message": "slow down", "data": None}
        return httpx.Response(429, json=body, headers=[(b"Retry-After", retry_after)])

    return LinksfieldClient(
        "https://api.test/topup",
        "P000270",
        transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 3, sleep=slept.append),
        retry=RetryPolicy(max_attempts=2, deadline_seconds=1e9),
        sleep=slept.append,
    )


@pytest.mark.parametrize(
    "value", [b"\xb2", b"\xb9\xb2", b"9" * 5000, b"1e400"], ids=lambda v: repr(v)[:12]
)
def test_a_retry_after_that_is_no_number_is_ignored_not_a_traceback(value: bytes) -> None:
    # Repro: `Retry-After: ²` (the byte 0xB2, latin-1) passed str.isdigit() and float() raised
    # ValueError out of the client; 5000 nines gave an infinite hold-off.
    slept: list[float] = []
    with _throttling_client(value, slept) as client:
        for _ in range(2):  # a hold-off the first call set delays the next one
            with pytest.raises(errors.RateLimited):
                client.list_groups()
    assert all(0 <= s <= MAX_RETRY_AFTER_SECONDS for s in slept)


def test_a_huge_retry_after_is_capped() -> None:
    slept: list[float] = []
    with _throttling_client(b"99999999999", slept) as client, pytest.raises(errors.RateLimited):
        client.list_groups()
    assert slept and max(slept) <= MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    "value", ["\u00b2", "\u00b9\u00b2", "9" * 5000, "\u0661\u0662"], ids=lambda v: repr(v)[:12]
)
def test_a_max_iccids_that_is_no_number_is_none_not_a_traceback(value: str) -> None:
    # Repro: {"code": "1005", "data": {"max_iccids": "²"}} raised ValueError in the engine.
    error = errors.TooManyIccids("1005", "too many", data={"max_iccids": value})
    assert error.max_iccids is None
    assert errors.TooManyIccids("1005", "x", data={"max_iccids": "250"}).max_iccids == 250


def test_the_sandbox_refuses_a_page_number_of_5000_digits_as_a_bad_parameter(
    sandbox: SandboxServer,
) -> None:
    # Repro: page_no of 5000 digits made int() raise in the sandbox: 1500 and a traceback.
    request = wire.build_request(
        wire.CONTRACT_V1,
        wire.CONTRACT_V1.members,
        seed.PARTNER,
        path_params={"group_id": seed.PILOT_GROUP},
        params={"page_no": "9" * 5000, "page_size": "10"},
    )
    answer = http_get(sandbox.base_url + request.path, params=request.query)
    envelope = wire.parse_envelope(answer.json())
    assert envelope is not None and envelope.code == wire.CODE_INVALID_PARAMETER
    assert "page_no" in envelope.message and len(envelope.message) < 200
