"""Vshop and Payment requests to a sandbox, built by hand from the contract (linksfield-api.md §6-7).

Independent of the client on purpose: the sandbox is checked against the contract's text, not
against the code that it is meant to test.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
from httphelp import http_client

from lf_bulk import signing
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.server import SandboxServer

VERIFY = "/singleVerify"
PLANS = "/singleServicePlanPage"
HELD = "/singleQueryOrder"
RENEWAL = "/queryAutoRenewalRecord"
CANCEL = "/cancelAutoRenewalRecord"
CREATE_ORDER = "/synPartner/SynOrderInfo"
PAYMENT = "/resultQuery"


def vshop_body(
    path: str,
    params: Mapping[str, Any],
    *,
    partner: str = seed.PARTNER,
    trade_time: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partnerCode": partner,
        "version": "3.0",
        "tradeTime": str(int((time.time() if trade_time is None else trade_time) * 1000)),
        "tradeType": path.rsplit("/", 1)[-1],
        "terminal": "1",
        "mark": "0",
        "languageCode": "1",
        **{k: str(v) for k, v in params.items()},
    }
    body["sign"] = signing.sign(body)
    return body


class Vshop:
    """Signed Vshop and Payment calls to one sandbox server."""

    def __init__(self, server: SandboxServer, partner: str = seed.PARTNER) -> None:
        self.server = server
        self.partner = partner
        self.http = http_client(base_url=server.base_url, timeout=10)

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return self.http.post(path, json=dict(body))

    def call(self, path: str, **params: Any) -> httpx.Response:
        return self.post(path, vshop_body(path, params, partner=self.partner))

    def ok(self, path: str, **params: Any) -> Any:
        response = self.call(path, **params)
        body = response.json()
        assert response.status_code == 200, body
        assert body["operateCode"] == "S" and not body.get("errorCode"), body
        return body["data"]

    def error(self, path: str, **params: Any) -> str:
        """The errorCode of a call that must fail."""
        body = self.call(path, **params).json()
        assert body["operateCode"] == "F", body
        return str(body["errorCode"])
