"""The client against httpx.MockTransport: envelopes, errors, retries, paging, signing on the wire."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from lf_bulk import errors
from lf_bulk.client import LinksfieldClient
from lf_bulk.models import OpStatus
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.signing import verify

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, **kwargs: object) -> LinksfieldClient:
        return LinksfieldClient(
            "https://api.test/topup",
            "P000270",
            transport=httpx.MockTransport(self),
            pacer=RequestPacer(1000, 3, sleep=lambda seconds: None),
            sleep=self.sleeps.append,
            **kwargs,  # type: ignore[arg-type]
        )


def ok(data: object) -> httpx.Response:
    return httpx.Response(200, json={"code": "0000", "message": "success", "data": data})


def test_get_is_signed_in_query_with_path_params_and_headers() -> None:
    rec = Recorder(lambda r: ok({"group_id": "G1", "total": 0, "page_no": 1, "iccids": []}))
    rec.client().member_page("G1", 1, 500)
    request = rec.requests[0]
    assert request.url.path == "/topup/mall/bundle-groups/G1/sims"
    params = dict(request.url.params)
    assert params["page_size"] == "500" and params["partnerCode"] == "P000270"
    signature = params.pop("sign")
    assert verify({**params, "group_id": "G1"}, signature)
    assert request.headers["Accept-Language"] == "en-US"


def test_post_and_delete_carry_signed_json_body() -> None:
    rec = Recorder(lambda r: ok({"request_id": "R1", "accepted": 2}))
    client = rec.client()
    assert client.add_sims("G1", ["a", "b"]).request_id == "R1"
    client.remove_sims("G1", ["a"])
    post, delete = rec.requests
    assert (post.method, delete.method) == ("POST", "DELETE")
    body = json.loads(post.content)
    assert body["iccids"] == ["a", "b"] and body["version"] == "3.0"
    assert verify({**body, "group_id": "G1"}, body.pop("sign"))


@pytest.mark.parametrize(
    "envelope",
    [
        {"code": "0000", "message": "ok", "data": []},
        {"status": {"code": "CB-00-0000", "message": "ok"}, "data": []},
        {"operateCode": "S", "message": "ok", "data": []},
    ],
)
def test_three_envelope_shapes_are_understood(envelope: dict[str, object]) -> None:
    rec = Recorder(lambda r: httpx.Response(200, json=envelope))
    assert rec.client().list_groups() == []


def test_error_in_alternative_envelope_raises_business_error() -> None:
    body = {"status": {"code": "CB-01-0001", "message": "bad"}, "data": None}
    rec = Recorder(lambda r: httpx.Response(200, json=body))
    with pytest.raises(errors.BusinessError, match="CB-01-0001"):
        rec.client().list_groups()


def test_unrecognised_body_quotes_it_without_secrets() -> None:
    rec = Recorder(lambda r: httpx.Response(200, text=f"weird P000270 {r.url.params['sign']}"))
    with pytest.raises(errors.EnvelopeError) as caught:
        rec.client().list_groups()
    assert "weird" in str(caught.value)
    assert "P000270" not in str(caught.value)
    assert rec.requests[0].url.params["sign"] not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        ("1001", 200, errors.InvalidParameter),
        ("1002", 200, errors.UnknownPartner),
        ("1003", 403, errors.SignatureRejected),
        ("1004", 200, errors.GroupNotFound),
        ("1006", 200, errors.RequestIdUnknown),
    ],
)
def test_business_errors_are_typed_and_never_retried(
    code: str, status: int, error_type: type[Exception]
) -> None:
    rec = Recorder(lambda r: httpx.Response(status, json={"code": code, "message": "m"}))
    with pytest.raises(error_type):
        rec.client().async_result("R1")
    assert len(rec.requests) == 1


def test_too_many_iccids_exposes_the_limit() -> None:
    body = {"code": "1005", "message": "too many", "data": {"max_iccids": 500}}
    rec = Recorder(lambda r: httpx.Response(200, json=body))
    with pytest.raises(errors.TooManyIccids) as caught:
        rec.client().add_sims("G1", ["x"] * 501)
    assert caught.value.max_iccids == 500


def test_429_honours_retry_after_then_succeeds() -> None:
    answers = iter(
        [
            httpx.Response(
                429, json={"code": "1429", "message": "slow"}, headers={"Retry-After": "7"}
            ),
            ok([]),
        ]
    )
    rec = Recorder(lambda r: next(answers))
    assert rec.client().list_groups() == []
    assert rec.sleeps[0] == 7.0
    assert len(rec.requests) == 2


def test_5xx_html_and_connection_errors_back_off_with_growing_jitter() -> None:
    failures = [
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"code": "1500", "message": "busy"}),
        httpx.ReadTimeout("slow"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            item = failures.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return ok([])

    rec = Recorder(handler)
    policy = RetryPolicy(max_attempts=10, initial_wait=1.0, max_wait=30)
    assert rec.client(retry=policy).list_groups() == []
    assert len(rec.requests) == 5
    assert len(rec.sleeps) == 4
    assert all(0 <= s <= 2**i for i, s in enumerate(rec.sleeps))


def test_retries_stop_after_max_attempts_with_the_last_error() -> None:
    rec = Recorder(lambda r: httpx.Response(502, text="<html>down</html>"))
    with pytest.raises(errors.HttpStatusError, match="HTTP 502"):
        rec.client(retry=RetryPolicy(max_attempts=3)).list_groups()
    assert len(rec.requests) == 3


def test_retries_stop_at_the_total_deadline() -> None:
    rec = Recorder(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")))
    # A deadline already spent stops before the first retry, however many attempts are allowed.
    with pytest.raises(errors.TransportError, match="refused"):
        rec.client(retry=RetryPolicy(max_attempts=100, deadline_seconds=0)).list_groups()
    assert len(rec.requests) == 1


def test_members_follow_every_page_and_dedupe_shifted_members() -> None:
    # A member removed between pages shifts the rest left: page 2 repeats one ICCID and is short.
    a, b, d = (f"894450000000000000{n}" for n in (1, 2, 4))
    pages = {
        1: {"total": 5, "iccids": [a, b]},
        2: {"total": 4, "iccids": [b, d]},
        3: {"total": 4, "iccids": []},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        page_no = int(request.url.params["page_no"])
        return ok({"group_id": "G1", "page_no": page_no, "page_size": 2, **pages[page_no]})

    rec = Recorder(handler)
    assert rec.client().list_members("G1", page_size=2) == [a, b, d]
    assert [int(r.url.params["page_no"]) for r in rec.requests] == [1, 2]


def test_short_page_is_not_the_end_while_total_says_more() -> None:
    a, c, d, e = (f"894450000000000000{n}" for n in (1, 3, 4, 5))
    pages = {1: [a], 2: [c, d], 3: [e]}

    def handler(request: httpx.Request) -> httpx.Response:
        page_no = int(request.url.params["page_no"])
        return ok({"total": 5, "page_no": page_no, "iccids": pages[page_no]})

    rec = Recorder(handler)
    assert rec.client().list_members("G1", page_size=2) == [a, c, d, e]


def test_async_result_and_orders_are_parsed_exactly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/async-result/R9"):
            return ok(
                {
                    "request_id": "R9",
                    "operation": "ADD",
                    "group_id": "G1",
                    "status": "PARTIAL_SUCCESS",
                    "total": 2,
                    "succeeded": 1,
                    "failed": 1,
                    "results": [
                        {"iccid": "a", "status": "SUCCESS"},
                        {"iccid": "b", "status": "FAILED", "reason_code": "SIM_LOCKED"},
                    ],
                }
            )
        order = {"order_id": "O1", "amount": "12.36", "currency": "gbp", "channel": "web"}
        return ok({"orders": [order]})

    client = Recorder(handler).client()
    result = client.async_result("R9")
    assert result.status is OpStatus.PARTIAL_SUCCESS and result.status.is_final
    assert [r.reason_code for r in result.results if not r.succeeded] == ["SIM_LOCKED"]
    (order,) = client.find_orders("order_id", "O1")
    assert order.amount == Decimal("12.36") and order.currency == "GBP"
    assert order.extra == {"channel": "web"}


def test_order_not_found_is_an_empty_list() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"code": "1007", "message": "none"}))
    assert rec.client().find_orders("sim_id", "8985") == []
