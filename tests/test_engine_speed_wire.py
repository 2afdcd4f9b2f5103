"""Issue #14, the 1M add's CPU per batch: an answer whose text cannot hold an unsafe character
is not cleaned string by string, and every other answer still is."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from lf_bulk import wire
from lf_bulk.client import LinksfieldClient
from lf_bulk.pacing import RequestPacer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(value=json_values, ascii_only=st.booleans())
def test_a_text_found_safe_decodes_to_what_cleaning_would_give(
    value: Any, ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    if wire.holds_only_safe_text(text):
        decoded = json.loads(text)
        assert wire.clean_tree(decoded) == decoded


def test_escapes_del_and_non_ascii_text_are_cleaned() -> None:
    assert not wire.holds_only_safe_text('{"reason": "\\u001b[31m"}')
    assert not wire.holds_only_safe_text('{"reason": "a\\nb"}')
    assert not wire.holds_only_safe_text('{"reason": "a\x7fb"}')
    assert not wire.holds_only_safe_text('{"reason": "\u202eevil"}')
    assert wire.holds_only_safe_text('{"code": "0000", "data": {"iccid": "8985"}}')


def answer(reason: str) -> bytes:
    results = [{"iccid": "89852420000000000011", "status": "FAILED", "reason_code": "X",
                "reason": reason}]  # fmt: skip
    data = {"request_id": "r1", "operation": "ADD", "group_id": "G1", "status": "FAILED",
            "total": 1, "succeeded": 0, "failed": 1, "results": results}  # fmt: skip
    return json.dumps({"code": wire.CODE_OK, "message": "ok", "data": data}).encode()


def polled_reason(body: bytes) -> str:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    with LinksfieldClient(
        "http://127.0.0.1:9", "P000270", transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 3),
    ) as client:  # fmt: skip
        return client.async_result("r1").results[0].reason


def test_an_escaped_control_in_an_answer_is_still_made_visible() -> None:
    assert polled_reason(answer("\x1b[31mred\x7f")) == "\\x1b[31mred\\x7f"


def test_a_plain_answer_is_read_as_it_is() -> None:
    assert polled_reason(answer("busy, try later")) == "busy, try later"
