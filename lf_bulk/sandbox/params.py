"""Reading a request's parameters, for the contract-v1 and the Vshop endpoints alike.

Each helper refuses with `Refusal(code, ...)`: the caller names the code of its contract
(`1001` for contract v1, `INVALID_PARAMETER` for Vshop and Payment).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from lf_bulk import wire
from lf_bulk.sandbox.state import Refusal


async def request_params(
    request: Request, code: str = wire.CODE_INVALID_PARAMETER
) -> dict[str, Any]:
    if request.method == "GET":
        items = request.query_params.multi_items()
        params = dict(items)
        if len(params) != len(items):
            raise Refusal(code, "a query parameter is repeated")
        return params
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise Refusal(code, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(code, "the body must be a JSON object")
    return body


def int_param(
    params: Mapping[str, Any],
    name: str,
    *,
    default: int,
    low: int,
    high: int | None = None,
    code: str = wire.CODE_INVALID_PARAMETER,
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    text = str(raw)
    if isinstance(raw, bool) or not (text.isascii() and text.isdigit()) or len(text) > 18:
        # 18 digits: int() refuses a string of more than 4300, and no page is that far anyway.
        shown = wire.shown_text(text, 40)
        raise Refusal(code, f"{name} must be a whole number, not {shown}")
    value = int(text)
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f"at least {low}"
        raise Refusal(code, f"{name} must be {allowed}, not {value}")
    return value


def text_param(params: Mapping[str, Any], name: str, code: str, *, required: bool = True) -> str:
    """A scalar parameter as text ("" when absent and not required)."""
    raw = params.get(name)
    if raw is None or raw == "" or isinstance(raw, dict | list):
        if required or isinstance(raw, dict | list):
            raise Refusal(code, f"missing parameter {name}")
        return ""
    return str(raw)
