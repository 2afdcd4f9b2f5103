"""The wire profile: every detail of the Linksfield API that this project *assumes*.

Linksfield documents the paths, the global parameters and the signature (see `signing.py`). The
request and response tables were not available, so the rest (field names, envelope, error codes,
whether path parameters are signed, page sizes) is "contract v1" (groups, orders) and "contract v2"
(quota, Vshop, Payment), written down in `docs/api-contract.md` with what a UAT account should
check. Everything assumed lives here, so that
a real UAT account can correct it in one place. The sandbox speaks the same profile.

It is also where ids and text cross the border: `validate_id` (the id alphabet, used at the edge),
`encode_path_param` (every path parameter percent-encoded, whatever the caller passes), and
`clean_text`, applied by `parse_envelope` to every string an answer carries, so that no control
character or invalid code point from the server reaches the journal, a terminal or a file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from lf_bulk import errors
from lf_bulk.lazy import lazy_module
from lf_bulk.models import Operation, OpStatus, Service
from lf_bulk.signing import SIGN_FIELD, canonical_json, sign

if TYPE_CHECKING:
    from lf_bulk import api_values
    from lf_bulk.api_values import (
        AsyncResult,
        CardInfo,
        CreatedOrder,
        Group,
        HeldPlan,
        MemberPage,
        Order,
        PaymentResult,
        PlanOffer,
        Renewal,
        Submission,
        TopUp,
    )
else:
    # The answers are made by the parse functions, when an answer comes: the journal imports
    # this module (the batch size), and `lf-bulk runs list` makes none of them.
    api_values = lazy_module("lf_bulk.api_values")

# The version of the contract document this profile implements (`doctor` names it).
# v1: bundle groups and orders; v2 adds the daily quota, Vshop and Payment (sections 5-7).
CONTRACT_VERSION = "v2"
CONTRACT_DOC = "docs/api-contract.md"

CODE_OK = "0000"
CODE_INVALID_PARAMETER = "1001"
CODE_UNKNOWN_PARTNER = "1002"
CODE_BAD_SIGNATURE = "1003"
CODE_GROUP_NOT_FOUND = "1004"
CODE_TOO_MANY_ICCIDS = "1005"
CODE_REQUEST_ID_UNKNOWN = "1006"
CODE_ORDER_NOT_FOUND = "1007"
CODE_RATE_LIMITED = "1429"
CODE_INTERNAL = "1500"

# Vshop and Payment error codes (contract v2, assumed).
VSHOP_CARD_NOT_FOUND = "CARD_NOT_FOUND"
VSHOP_CARD_NOT_OWNED = "CARD_NOT_OWNED"
VSHOP_CARD_INACTIVE = "CARD_INACTIVE"
VSHOP_PLAN_NOT_FOUND = "PLAN_NOT_FOUND"
VSHOP_ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
VSHOP_RENEWAL_NOT_FOUND = "RENEWAL_NOT_FOUND"
VSHOP_DUPLICATE_ORDER_NO = "DUPLICATE_ORDER_NO"
VSHOP_INVALID_PARAMETER = "INVALID_PARAMETER"
VSHOP_SYSTEM_BUSY = "SYSTEM_BUSY"
PAY_NOT_FOUND = "PAY_NOT_FOUND"
# A 429 whose `data.quota` is this is the day's quota, not a burst (Retry-After: next midnight).
QUOTA_FIELD = "quota"
QUOTA_DAILY = "DAILY"
# How far `tradeTime` may be from the server's clock before it answers INVALID_PARAMETER.
TRADE_TIME_TOLERANCE_SECONDS = 600

ERROR_CLASSES: Mapping[str, type[errors.BusinessError]] = {
    CODE_INVALID_PARAMETER: errors.InvalidParameter,
    CODE_UNKNOWN_PARTNER: errors.UnknownPartner,
    CODE_BAD_SIGNATURE: errors.SignatureRejected,
    CODE_GROUP_NOT_FOUND: errors.GroupNotFound,
    CODE_TOO_MANY_ICCIDS: errors.TooManyIccids,
    CODE_REQUEST_ID_UNKNOWN: errors.RequestIdUnknown,
    CODE_ORDER_NOT_FOUND: errors.OrderNotFound,
    CODE_RATE_LIMITED: errors.RateLimited,
    CODE_INTERNAL: errors.ServerError,
    VSHOP_CARD_NOT_FOUND: errors.CardNotFound,
    VSHOP_CARD_NOT_OWNED: errors.CardNotOwned,
    VSHOP_CARD_INACTIVE: errors.CardInactive,
    VSHOP_PLAN_NOT_FOUND: errors.PlanNotFound,
    VSHOP_ORDER_NOT_FOUND: errors.VshopOrderNotFound,
    VSHOP_RENEWAL_NOT_FOUND: errors.RenewalNotFound,
    VSHOP_DUPLICATE_ORDER_NO: errors.DuplicateOrderNo,
    VSHOP_INVALID_PARAMETER: errors.InvalidParameter,
    VSHOP_SYSTEM_BUSY: errors.SystemBusy,
    PAY_NOT_FOUND: errors.PayNotFound,
}

# The HTTP status the sandbox pairs with each code (contract v1 table).
HTTP_STATUS_OF_CODE: Mapping[str, int] = {
    CODE_BAD_SIGNATURE: 403,
    CODE_RATE_LIMITED: 429,
    CODE_INTERNAL: 500,
}

# Per-SIM reason codes in async results.
REASON_SIM_NOT_FOUND = "SIM_NOT_FOUND"
REASON_SIM_NOT_OWNED = "SIM_NOT_OWNED"
REASON_ALREADY_IN_GROUP = "ALREADY_IN_GROUP"
REASON_NOT_IN_GROUP = "NOT_IN_GROUP"
REASON_IN_OTHER_GROUP = "IN_OTHER_GROUP"
REASON_SIM_LOCKED = "SIM_LOCKED"
REASON_INTERNAL = "INTERNAL"
RETRYABLE_REASONS = frozenset({REASON_SIM_LOCKED, REASON_INTERNAL})

ORDER_KEYS = ("purchase_order_id", "order_id", "sim_id")  # documented lookup precedence


class TradeGlobals(StrEnum):
    """Which trade parameters a call carries besides partnerCode, version and sign."""

    NONE = "none"  # contract v1 calls
    VSHOP = "vshop"  # tradeTime, tradeType, terminal, mark, languageCode
    PAYMENT = "payment"  # tradeTime, tradeType


VSHOP_TERMINAL = "1"
VSHOP_MARK = "0"
VSHOP_LANGUAGE_CODE = "1"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    service: Service = Service.TOPUP
    trade: TradeGlobals = TradeGlobals.NONE

    @property
    def trade_type(self) -> str:
        """`tradeType`: the last segment of the endpoint's path (e.g. "singleVerify")."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def path_params(self) -> tuple[str, ...]:
        return tuple(part[1:-1] for part in self.path.split("/") if part.startswith("{"))


@dataclass(frozen=True)
class WireProfile:
    name: str = f"contract-{CONTRACT_VERSION}"
    contract_version: str = CONTRACT_VERSION
    version: str = "3.0"
    groups: Endpoint = Endpoint("GET", "/mall/bundle-groups/bundles")
    members: Endpoint = Endpoint("GET", "/mall/bundle-groups/{group_id}/sims")
    add: Endpoint = Endpoint("POST", "/mall/bundle-groups/{group_id}/sims")
    remove: Endpoint = Endpoint("DELETE", "/mall/bundle-groups/{group_id}/sims")
    async_result: Endpoint = Endpoint("GET", "/async-result/{request_id}")
    order: Endpoint = Endpoint("GET", "/mall/order")
    # Contract v2: one SIM per call, POST, on the Vshop and Payment base URLs.
    verify: Endpoint = Endpoint("POST", "/singleVerify", Service.VSHOP, TradeGlobals.VSHOP)
    plans: Endpoint = Endpoint("POST", "/singleServicePlanPage", Service.VSHOP, TradeGlobals.VSHOP)
    held_orders: Endpoint = Endpoint("POST", "/singleQueryOrder", Service.VSHOP, TradeGlobals.VSHOP)
    renewal: Endpoint = Endpoint(
        "POST", "/queryAutoRenewalRecord", Service.VSHOP, TradeGlobals.VSHOP
    )
    cancel_renewal: Endpoint = Endpoint(
        "POST", "/cancelAutoRenewalRecord", Service.VSHOP, TradeGlobals.VSHOP
    )
    create_order: Endpoint = Endpoint(
        "POST", "/synPartner/SynOrderInfo", Service.VSHOP, TradeGlobals.VSHOP
    )
    payment_result: Endpoint = Endpoint(
        "POST", "/resultQuery", Service.PAYMENT, TradeGlobals.PAYMENT
    )
    # The global rule says path parameters are signed; the GET pages mention only the query string.
    sign_path_params: bool = True
    max_page_size: int = 1000
    max_plan_page_size: int = 100
    default_max_iccids: int = 500
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"Content-Type": "application/json", "Accept-Language": "en-US"}
    )

    def endpoints(self) -> dict[str, Endpoint]:
        """Every endpoint of the profile by its field name ("groups", "add", ...), in order."""
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if isinstance(getattr(self, item.name), Endpoint)
        }


CONTRACT_V1 = WireProfile()
"""The profile of this release: contract v1 (groups, orders) and v2 (Vshop, Payment), despite
its name, which the code has used since v0.1.0."""

DEFAULT_BATCH_SIZE = CONTRACT_V1.default_max_iccids
"""ICCIDs per add/remove request unless told otherwise: the most the contract accepts in one."""


# ---------------------------------------------------------------- ids and text

ID_MAX_LENGTH = 64
# Generous for ids like G1001, uuids and hex request ids, but never a character that means
# something in a URL path (/ ? # % \), whitespace, controls, or a leading dot (a `..` segment).
_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
ID_ALPHABET = "letters, digits and . _ : - (starting with a letter or digit)"


class IdKind(StrEnum):
    GROUP = "group id"
    REQUEST = "request id"
    ORDER_NO = "order_no"
    PAY_ID = "pay_id"


def validate_id(value: str, kind: IdKind) -> str:
    """`value` if it is a well-formed id of `kind`, else InputError saying what is wrong.

    Used at the edge (command arguments, file columns) so that a bad id is a usage error and
    nothing is sent; `build_request` still percent-encodes whatever it is given.
    """
    shown = shown_text(value)
    if not value:
        raise errors.InputError(f"{kind} is empty")
    if len(value) > ID_MAX_LENGTH:
        raise errors.InputError(
            f"{kind} {shown} is {len(value)} characters long; at most {ID_MAX_LENGTH}"
        )
    if not _ID_SHAPE.fullmatch(value):
        bad = next(
            (i, c) for i, c in enumerate(value) if not _ID_SHAPE.fullmatch(("A" if i else "") + c)
        )
        raise errors.InputError(
            f"{kind} {shown} has {shown_text(bad[1])} at position {bad[0] + 1}; "
            f"an id has {ID_ALPHABET} only"
        )
    return value


def is_valid_id(value: str) -> bool:
    """Whether `value` passes `validate_id` (for callers that report rather than raise)."""
    return len(value) <= ID_MAX_LENGTH and bool(_ID_SHAPE.fullmatch(value))


def validate_group_id(value: str) -> str:
    """`value` if it is a well-formed group id (e.g. G1001), else InputError."""
    return validate_id(value, IdKind.GROUP)


def validate_request_id(value: str) -> str:
    """`value` if it is a well-formed asynchronous request id (a uuid, hex...), else InputError."""
    return validate_id(value, IdKind.REQUEST)


def encode_path_param(value: str) -> str:
    """One path segment, whatever `value` holds: every reserved byte percent-encoded.

    An empty value is refused (InputError, nothing sent): it would leave `//` in the path, which
    a server or proxy may merge into another endpoint's path.
    """
    if not str(value):
        raise errors.InputError("an id to send is empty: there is no path segment to send it in")
    encoded = quote(str(value), safe="")
    if encoded.strip(".") == "":
        # "." and ".." are left as they are by quote() and would move up the path.
        encoded = encoded.replace(".", "%2E")
    return encoded


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls (ESC included), DEL, bidirectional marks and overrides, the Unicode line and
# paragraph separators (a line break to editors and log viewers), and lone surrogates (a valid
# pair is one code point in a Python str, so any surrogate left is a lone one).
_UNSAFE_TEXT = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean_text(value: object) -> str:
    """API text made safe to store, print and write: controls visible, invalid Unicode U+FFFD.

    ESC and the other C0/C1 controls (and bidirectional overrides) become visible escapes such
    as `\\x1b`, so a terminal never acts on them; a lone surrogate becomes U+FFFD, so the text
    encodes as UTF-8 in the journal, the terminal and every file.
    """
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE_TEXT.sub(_escape, text)


def clean_tree(value: Any) -> Any:
    """JSON data with every string (object keys included) passed through `clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_tree(v) for v in value]
    return value


SHOWN_TEXT_LIMIT = 80


def shown_text(value: str, limit: int = SHOWN_TEXT_LIMIT) -> str:
    """`value` quoted for a message: controls escaped, cut to `limit` characters."""
    text = clean_text(value)
    if len(text) > limit:
        text = f"{text[:limit]}...({len(value)} characters)"
    return f"'{text}'"


# An ICCID-like member id: digits only. The server's list is not validated further (no Luhn
# check), but nothing that could be a formula, markup or a path ever passes as a member.
_MEMBER_ID = re.compile(r"[0-9]{10,22}")


def is_member_id(value: str) -> bool:
    return bool(_MEMBER_ID.fullmatch(value))


@dataclass(frozen=True)
class WireRequest:
    method: str
    path: str
    query: dict[str, str] | None
    body: dict[str, Any] | None


def build_request(
    profile: WireProfile,
    endpoint: Endpoint,
    partner_code: str,
    *,
    path_params: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> WireRequest:
    """Fill in the global parameters and the signature, GET in the query and others in the body.

    A Vshop or Payment call gets its trade parameters too, with `tradeTime` from `clock`: build
    the request anew for every attempt, so that each carries a fresh time and signature.
    """
    path_params = dict(path_params or {})
    sent: dict[str, Any] = {
        "partnerCode": partner_code,
        "version": profile.version,
        **trade_params(endpoint, clock),
        **{k: _as_sent(v) for k, v in (params or {}).items() if v is not None and v != ""},
    }
    signed = {**sent, **path_params} if profile.sign_path_params else sent
    sent[SIGN_FIELD] = sign(signed)
    empty = [k for k, v in path_params.items() if not str(v)]
    if empty:
        raise errors.InputError(
            f"{', '.join(empty)} is empty: nothing sent to {endpoint.method} {endpoint.path}"
        )
    path = endpoint.path.format(**{k: encode_path_param(v) for k, v in path_params.items()})
    if endpoint.method == "GET":
        return WireRequest(endpoint.method, path, {k: str(v) for k, v in sent.items()}, None)
    return WireRequest(endpoint.method, path, None, sent)


def trade_params(endpoint: Endpoint, clock: Callable[[], float] = time.time) -> dict[str, str]:
    """The trade parameters `endpoint` carries (none for contract v1 calls)."""
    if endpoint.trade is TradeGlobals.NONE:
        return {}
    params = {"tradeTime": str(round(clock() * 1000)), "tradeType": endpoint.trade_type}
    if endpoint.trade is TradeGlobals.VSHOP:
        params |= {
            "terminal": VSHOP_TERMINAL,
            "mark": VSHOP_MARK,
            "languageCode": VSHOP_LANGUAGE_CODE,
        }
    return params


def _as_sent(value: Any) -> Any:
    # The documented examples send every scalar as a JSON string.
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)


def signed_params(
    profile: WireProfile, params: Mapping[str, Any], path_params: Mapping[str, str]
) -> dict[str, Any]:
    """What a server hashes to check a request's `sign` (the other side of build_request)."""
    return {**params, **path_params} if profile.sign_path_params else dict(params)


# ---------------------------------------------------------------- envelopes


@dataclass(frozen=True)
class Envelope:
    ok: bool
    code: str
    message: str
    data: Any


def holds_only_safe_text(text: str) -> bool:
    """Whether every string that `decode_json(text)` gives is already as `clean_text` leaves
    it: an ASCII text with no escape (backslash) and no DEL can only give printable ASCII,
    since JSON refuses raw control characters inside strings. A 500-result answer is then not
    walked string by string (3 ms of the engine's GIL per batch)."""
    return text.isascii() and "\\" not in text and "\x7f" not in text


def parse_envelope(body: Any, *, clean: bool = True) -> Envelope | None:
    """Recognise the canonical envelope and the two that other Linksfield APIs use.

    Every string in the answer goes through `clean_text` here, where API text arrives, so no
    caller ever holds a control character or an invalid code point from the server. `clean`
    False: the caller found the answer's text `holds_only_safe_text`.
    """
    if not isinstance(body, dict):
        return None
    if clean:
        body = clean_tree(body)
    if "code" in body and isinstance(body["code"], str | int):
        code = str(body["code"])
        return Envelope(code == CODE_OK, code, str(body.get("message", "")), body.get("data"))
    status = body.get("status")
    if isinstance(status, dict) and "code" in status:
        code = str(status["code"])
        message = str(status.get("message", ""))
        return Envelope(code == "CB-00-0000", code, message, body.get("data"))
    if "operateCode" in body:
        # The Vshop envelope: "S" or "F", the reason of an "F" in errorCode.
        ok = str(body["operateCode"]) == "S"
        code = "S" if ok else str(body.get("errorCode") or body["operateCode"])
        return Envelope(ok, code, str(body.get("message", "")), body.get("data"))
    if "tradeRstCode" in body:
        code = str(body["tradeRstCode"])
        message = str(body.get("tradeRstMessage", body.get("message", "")))
        return Envelope(code == CODE_OK, code, message, body.get("data"))
    return None


def make_envelope(code: str, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


def make_vshop_envelope(code: str, message: str, data: Any = None) -> dict[str, Any]:
    """The Vshop envelope: `code` is CODE_OK for success, else the error code (or 1429...)."""
    if code == CODE_OK:
        return {"operateCode": "S", "message": message, "data": data}
    return {"operateCode": "F", "errorCode": code, "message": message, "data": data}


def is_daily_quota(envelope: Envelope) -> bool:
    """Whether an error answer says the day's quota is spent (not a burst to retry in a second)."""
    data = envelope.data
    return (
        envelope.code == CODE_RATE_LIMITED
        and isinstance(data, dict)
        and str(data.get(QUOTA_FIELD, "")).upper() == QUOTA_DAILY
    )


def business_error(
    envelope: Envelope, *, http_status: int, retry_after: float | None
) -> errors.BusinessError:
    cls = ERROR_CLASSES.get(envelope.code, errors.BusinessError)
    if cls is errors.RateLimited:
        return errors.RateLimited(
            envelope.code,
            envelope.message,
            data=envelope.data,
            http_status=http_status,
            retry_after=retry_after,
        )
    return cls(envelope.code, envelope.message, data=envelope.data, http_status=http_status)


def decode_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---------------------------------------------------------------- response data


def _require_dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise errors.EnvelopeError(f"{what}: expected an object in 'data', got {kind}")
    return data


# JSON numbers such as 1e400 or Infinity decode to an infinite float: int() raises OverflowError.
_NOT_AN_INT = (TypeError, ValueError, OverflowError)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except _NOT_AN_INT:
        return default


def _opt_int(value: Any) -> int | None:
    try:
        return int(value)
    except _NOT_AN_INT:
        return None


def parse_groups(data: Any) -> list[Group]:
    if not isinstance(data, list):
        raise errors.EnvelopeError("groups: expected a list in 'data'")
    groups = []
    for item in data:
        item = _require_dict(item, "groups")
        bundles = tuple(
            api_values.Bundle(
                bundle_id=str(b.get("bundle_id", "")),
                bundle_name=str(b.get("bundle_name", "")),
                data_mb=_opt_int(b.get("data_mb")),
                validity_days=_opt_int(b.get("validity_days")),
            )
            for b in item.get("bundles") or []
            if isinstance(b, dict)
        )
        groups.append(
            api_values.Group(
                group_id=str(item.get("group_id", "")),
                group_name=str(item.get("group_name", "")),
                sim_count=_int(item.get("sim_count")),
                bundles=bundles,
            )
        )
    return groups


def member_page_params(page_no: int, page_size: int) -> dict[str, int]:
    return {"page_no": page_no, "page_size": page_size}


def parse_member_page(data: Any) -> MemberPage:
    """A page of members; ids that are not ICCID-like are kept apart in `rejected`, never used."""
    data = _require_dict(data, "members")
    listed = data.get("iccids") or []
    if not isinstance(listed, list):
        raise errors.EnvelopeError("members: expected a list in 'iccids'")
    members = [clean_text(i) for i in listed]
    return api_values.MemberPage(
        group_id=clean_text(data.get("group_id", "")),
        total=_int(data.get("total")),
        page_no=_int(data.get("page_no"), 1),
        page_size=_int(data.get("page_size"), 0),
        iccids=tuple(i for i in members if is_member_id(i)),
        rejected=tuple(i for i in members if not is_member_id(i)),
    )


def iccid_params(iccids: Sequence[str]) -> dict[str, list[str]]:
    return {"iccids": list(iccids)}


def parse_submission(data: Any) -> Submission:
    data = _require_dict(data, "submission")
    request_id = str(data.get("request_id") or "")
    if not request_id:
        raise errors.EnvelopeError("submission: the answer has no request_id")
    if not is_valid_id(request_id):
        # It would be journaled, shown and polled as a path segment: an answer we cannot use,
        # like one we cannot read (the batch is settled by membership on resume).
        raise errors.EnvelopeError(
            f"submission: the answer's request_id {shown_text(request_id)} is not a request id "
            f"({ID_ALPHABET}, at most {ID_MAX_LENGTH})"
        )
    return api_values.Submission(request_id=request_id, accepted=_int(data.get("accepted")))


def parse_async_result(data: Any) -> AsyncResult:
    data = _require_dict(data, "async result")
    try:
        status = OpStatus(str(data.get("status", "")).upper())
        operation = Operation(str(data.get("operation", "")).upper())
    except ValueError as exc:
        raise errors.EnvelopeError(f"async result: {exc}") from None
    sim_result = api_values.SimResult  # looked up once, not for each of up to 500 results
    results = tuple(
        sim_result(
            iccid=str(r.get("iccid", "")),
            succeeded=str(r.get("status", "")).upper() == "SUCCESS",
            reason_code=str(r.get("reason_code") or ""),
            reason=str(r.get("reason") or ""),
        )
        for r in data.get("results") or []
        if isinstance(r, dict)
    )
    return api_values.AsyncResult(
        request_id=str(data.get("request_id", "")),
        operation=operation,
        group_id=str(data.get("group_id", "")),
        status=status,
        total=_int(data.get("total")),
        succeeded=_int(data.get("succeeded")),
        failed=_int(data.get("failed")),
        results=results,
        created_at=str(data.get("created_at") or ""),
        finished_at=str(data.get("finished_at") or ""),
    )


ORDER_FIELDS = (
    "order_id",
    "purchase_order_id",
    "sim_id",
    "bundle_id",
    "bundle_name",
    "periods",
    "amount",
    "currency",
    "pay_status",
    "pay_type",
    "pay_id",
    "created_at",
    "paid_at",
    "start_time",
    "expire_time",
    "auto_renewal",
)


def _decimal(value: Any, what: str = "order: amount") -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        # A float amount has already lost exactness on the wire; keep its shortest repr.
        value = repr(value)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise errors.EnvelopeError(f"{what} {value!r} is not a decimal")
    return amount


def parse_order(item: Any) -> Order:
    item = _require_dict(item, "order")
    text = {k: "" if item.get(k) is None else str(item.get(k)) for k in ORDER_FIELDS}
    return api_values.Order(
        order_id=text["order_id"],
        purchase_order_id=text["purchase_order_id"],
        sim_id=text["sim_id"],
        bundle_id=text["bundle_id"],
        bundle_name=text["bundle_name"],
        periods=_opt_int(item.get("periods")),
        amount=_decimal(item.get("amount")),
        currency=text["currency"].upper(),
        pay_status=text["pay_status"].upper(),
        pay_type=text["pay_type"],
        pay_id=text["pay_id"],
        created_at=text["created_at"],
        paid_at=text["paid_at"],
        start_time=text["start_time"],
        expire_time=text["expire_time"],
        auto_renewal=text["auto_renewal"],
        extra={k: v for k, v in item.items() if k not in ORDER_FIELDS},
    )


def parse_orders(data: Any) -> list[Order]:
    data = _require_dict(data, "orders")
    return [parse_order(o) for o in data.get("orders") or []]


# ---------------------------------------------------------------- contract v2 data


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return "" if value is None else str(value)


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "y", "yes")


def device_params(iccid: str, **more: Any) -> dict[str, Any]:
    """The body of a per-SIM Vshop call: `deviceCode` is the ICCID."""
    return {"deviceCode": iccid, **more}


def plan_page_params(
    iccid: str, page_no: int, page_size: int, area: str | None = None
) -> dict[str, Any]:
    return device_params(iccid, area=area, pageNo=page_no, pageSize=page_size)


def cancel_renewal_params(iccid: str, order_no: str, pay_id: str) -> dict[str, Any]:
    if not order_no or not pay_id:
        raise errors.InputError(
            "a renewal cancel needs the orderNo and payId its look-up returned; nothing sent"
        )
    return device_params(iccid, orderNo=order_no, payId=pay_id)


def parse_card(data: Any, iccid: str) -> CardInfo:
    data = _require_dict(data, "card")
    return api_values.CardInfo(
        iccid=_text(data, "deviceCode") or iccid,
        card_status=_text(data, "cardStatus").upper(),
        area=_text(data, "area"),
    )


def parse_plan(item: Any) -> PlanOffer:
    item = _require_dict(item, "plan")
    price = _decimal(item.get("price"), "plan price")
    return api_values.PlanOffer(
        package_code=_text(item, "packageCode"),
        name=_text(item, "servicePlanShowName"),
        area=_text(item, "area"),
        data_mb=_opt_int(item.get("dataMb")),
        validity_days=_opt_int(item.get("validityDays")),
        price=price,
        currency=_text(item, "currency").upper(),
        auto_renewal=_flag(item.get("autoRenewal")),
    )


def parse_plan_page(data: Any) -> tuple[int, list[PlanOffer]]:
    """(total, plans of this page)."""
    data = _require_dict(data, "plans")
    listed = data.get("list") or []
    if not isinstance(listed, list):
        raise errors.EnvelopeError("plans: expected a list in 'list'")
    return _int(data.get("total"), len(listed)), [parse_plan(p) for p in listed]


def parse_held_plans(data: Any) -> list[HeldPlan]:
    data = _require_dict(data, "held orders")
    listed = data.get("orderList") or []
    if not isinstance(listed, list):
        raise errors.EnvelopeError("held orders: expected a list in 'orderList'")
    held = []
    for item in listed:
        item = _require_dict(item, "held order")
        held.append(
            api_values.HeldPlan(
                status=_text(item, "orderStatus"),
                name=_text(item, "servicePlanShowName"),
                time=_opt_int(item.get("time")),
                unit=_text(item, "unit"),
                expire_date=_text(item, "expireDate"),
                remaining_days=_opt_int(item.get("remainingDays")),
                order_no=_text(item, "orderNo"),
                package_code=_text(item, "packageCode"),
                start_date=_text(item, "startDate"),
            )
        )
    return held


def parse_renewal(data: Any, iccid: str) -> Renewal | None:
    """The SIM's active auto-renewal, or None (`data` is null when there is none)."""
    if data is None or data == {} or data == []:
        return None
    data = _require_dict(data, "renewal")
    return api_values.Renewal(
        iccid=_text(data, "deviceCode") or iccid,
        order_no=_text(data, "orderNo"),
        pay_id=_text(data, "payId"),
        plan_name=_text(data, "servicePlanShowName"),
        periods=_opt_int(data.get("orderPeriod")),
        package_type=_text(data, "packageType"),
        subscription_time=_text(data, "subscriptionTime"),
    )


def create_order_params(top_up: TopUp) -> dict[str, Any]:
    """The SynOrderInfo body of a paid order (section 6): the amount as exact decimal text."""
    for name, value in (("orderNo", top_up.order_no), ("payId", top_up.pay_id),
                        ("packageCode", top_up.package_code)):  # fmt: skip
        if not value:
            raise errors.InputError(f"an order needs {name}; nothing sent")
    if not top_up.amount.is_finite() or top_up.amount <= 0 or top_up.periods < 1:
        raise errors.InputError("an order needs an amount above 0 and at least 1 period")
    return device_params(
        top_up.iccid,
        orderNo=top_up.order_no,
        packageCode=top_up.package_code,
        orderPeriod=str(top_up.periods),
        autoRenewal="1" if top_up.auto_renewal else "0",
        payAmount=f"{top_up.amount:f}",
        payCurrency=top_up.currency,
        payId=top_up.pay_id,
        payResultDate=top_up.pay_time or None,
        payRst="SUCCESS",
        payStatus="1",
        payType=top_up.pay_type or None,
    )


def parse_created_order(data: Any, top_up: TopUp) -> CreatedOrder:
    data = _require_dict(data, "created order")
    order_id = _text(data, "order_id") or _text(data, "orderId")
    if not order_id:
        raise errors.EnvelopeError("created order: no order_id in the answer")
    return api_values.CreatedOrder(
        order_no=_text(data, "orderNo") or top_up.order_no,
        order_id=clean_text(order_id),
        iccid=_text(data, "deviceCode") or top_up.iccid,
    )


def payment_params(pay_id: str) -> dict[str, Any]:
    if not pay_id:
        raise errors.InputError("a payment look-up needs a payId; nothing sent")
    return {"payId": pay_id}


def parse_payment(data: Any, pay_id: str) -> PaymentResult:
    data = _require_dict(data, "payment")
    return api_values.PaymentResult(
        pay_id=clean_text(_text(data, "payId") or pay_id),
        pay_status=clean_text(_text(data, "payStatus").upper()),
        amount=_decimal(data.get("payAmount"), "payment: payAmount"),
        currency=clean_text(_text(data, "payCurrency").upper()),
        pay_time=clean_text(_text(data, "payTime")),
        order_no=clean_text(_text(data, "orderNo")),
        iccid=clean_text(_text(data, "deviceCode")),
    )


# ---------------------------------------------------------------- contract v2: the push
#
# Linksfield POSTs a Recharge Success event to the partner's URL (contract section v2.5). The
# header names, the version, the algorithm and the key's form are documented; how the signed
# content is put together, the event's fields and its business key are assumed, and held here.

PUSH_EVENT_RECHARGE_SUCCESS = "RECHARGE_SUCCESS"
PUSH_DATA_FIELDS = (
    "orderNo",
    "order_id",
    "deviceCode",
    "packageCode",
    "servicePlanShowName",
    "orderPeriod",
    "payAmount",
    "payCurrency",
    "payId",
    "payTime",
    "startDate",
    "expireDate",
)


class PushRejection(StrEnum):
    """Why a push was refused with 401 (said in the receiver's log, never to the caller)."""

    MISSING_HEADER = "missing_header"
    BAD_VERSION = "bad_version"
    BAD_ALGORITHM = "bad_algorithm"
    UNKNOWN_KEY_ID = "unknown_key_id"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class PushProfile:
    """Everything assumed about the Recharge Success push, in one place (contract v2.5)."""

    version_header: str = "x-lf-notification-version"
    algorithm_header: str = "x-lf-algo"
    signature_header: str = "x-lf-signature"
    timestamp_header: str = "x-lf-timestamp"
    version: str = "1.0"
    algorithm: str = "HMAC-SHA1"
    window_seconds: int = 600
    """How far `x-lf-timestamp` (milliseconds) may be from the receiver's clock, either way."""
    sort_nested_keys: bool = True
    """The documented rule sorts the top-level keys; the signing rules of section 2 (which the
    contract reuses) sort every object's keys. One switch, for a UAT check to settle."""
    max_body_bytes: int = 1024 * 1024
    answer_seconds: float = 5.0
    """Linksfield's deadline for the 2xx; the receiver answers well within it."""

    def header_names(self) -> tuple[str, str, str, str]:
        return (
            self.version_header,
            self.algorithm_header,
            self.signature_header,
            self.timestamp_header,
        )


PUSH_V2 = PushProfile()


def push_key(key_hex: str) -> bytes:
    """The notification key's bytes (`bytes.fromhex(key_hex)`); ValueError never quotes the key."""
    text = key_hex.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(
            f"the notification key is not hexadecimal ({len(text)} characters; Linksfield's "
            "console shows it as key_hex)"
        ) from None
    if not key:
        raise ValueError("the notification key is empty")
    return key


def push_sign_content(
    body: Mapping[str, Any], timestamp: str, profile: PushProfile = PUSH_V2
) -> str:
    """`{version}:{algo}:{timestamp}:` + the body as compact sorted JSON (section 2's rules)."""
    if profile.sort_nested_keys:
        text = canonical_json(body)
    else:
        compact = partial(json.dumps, separators=(",", ":"), ensure_ascii=False)
        text = "{" + ",".join(f"{compact(k)}:{compact(v)}" for k, v in sorted(body.items())) + "}"
    return f"{profile.version}:{profile.algorithm}:{timestamp}:{text}"


def push_signature(
    body: Mapping[str, Any], timestamp: str, key: bytes, profile: PushProfile = PUSH_V2
) -> str:
    """Lowercase hex HMAC-SHA1 of the signed content (UTF-8) with the key's bytes."""
    # A lone surrogate (JSON allows "\ud800") has no UTF-8 form: its code is hashed as it is.
    content = push_sign_content(body, timestamp, profile).encode("utf-8", "surrogatepass")
    return hmac.new(key, content, hashlib.sha1).hexdigest()


def sign_push(
    body: Mapping[str, Any],
    key_id: str,
    key_hex: str,
    *,
    clock: Callable[[], float] = time.time,
    profile: PushProfile = PUSH_V2,
) -> dict[str, str]:
    """The headers Linksfield sends with `body` (the sandbox's pusher, and tests)."""
    timestamp = str(round(clock() * 1000))
    signature = push_signature(body, timestamp, push_key(key_hex), profile)
    return {
        "Content-Type": "application/json",
        profile.version_header: profile.version,
        profile.algorithm_header: profile.algorithm,
        profile.signature_header: f"{key_id}/{signature}",
        profile.timestamp_header: timestamp,
    }


def make_recharge_event(
    transaction_id: str, event_time_ms: int, data: Mapping[str, object]
) -> dict[str, Any]:
    """A Recharge Success body (the sandbox's pusher): `data` keyed by `PUSH_DATA_FIELDS`, every
    value sent as a string (as section 2's examples send scalars); a re-send of the same order
    gets a new `transaction_id` and the same `data`."""
    unknown = sorted(set(data) - set(PUSH_DATA_FIELDS))
    if unknown:
        raise ValueError(f"not fields of a Recharge Success event: {', '.join(unknown)}")
    return {
        "transactionId": transaction_id,
        "eventType": PUSH_EVENT_RECHARGE_SUCCESS,
        "eventTime": str(event_time_ms),
        "data": {name: "" if value is None else str(value) for name, value in data.items()},
    }


def push_body_bytes(body: Mapping[str, Any]) -> bytes:
    """How a pusher writes the body on the wire (any JSON text of it verifies the same)."""
    return json.dumps(body, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class PushHeaders:
    """The signature headers of a push, read (not yet verified)."""

    version: str
    algorithm: str
    key_id: str
    signature: str
    timestamp: str

    def as_stored(self, profile: PushProfile = PUSH_V2) -> dict[str, str]:
        return dict(
            zip(
                profile.header_names(),
                (self.version, self.algorithm, f"{self.key_id}/{self.signature}", self.timestamp),
                strict=True,
            )
        )


def read_push_headers(
    headers: Mapping[str, str], profile: PushProfile = PUSH_V2
) -> PushHeaders | PushRejection:
    """The four headers (names case-insensitive, as HTTP has them), or why they are unusable."""
    lowered = {name.lower(): value for name, value in headers.items()}
    values = [lowered.get(name.lower(), "").strip() for name in profile.header_names()]
    if not all(values):
        return PushRejection.MISSING_HEADER
    version, algorithm, signed_by, timestamp = values
    key_id, slash, signature = signed_by.rpartition("/")
    if not slash or not key_id or not signature:
        return PushRejection.MISSING_HEADER
    return PushHeaders(version, algorithm, key_id, signature.lower(), timestamp)


def check_push_headers(
    headers: PushHeaders,
    key_id: str,
    *,
    now: float,
    profile: PushProfile = PUSH_V2,
) -> PushRejection | None:
    """What the headers alone prove wrong (before the body is read); None when nothing."""
    if headers.version != profile.version:
        return PushRejection.BAD_VERSION
    if headers.algorithm.upper() != profile.algorithm:
        return PushRejection.BAD_ALGORITHM
    if not hmac.compare_digest(headers.key_id.encode(), key_id.encode()):
        return PushRejection.UNKNOWN_KEY_ID
    if not headers.timestamp.isascii() or not headers.timestamp.isdigit():
        return PushRejection.BAD_TIMESTAMP
    if len(headers.timestamp) > 16:  # past year 2286 in milliseconds: not a time
        return PushRejection.BAD_TIMESTAMP
    if abs(int(headers.timestamp) / 1000 - now) > profile.window_seconds:
        return PushRejection.STALE_TIMESTAMP
    return None


def verify_push_signature(
    body: Mapping[str, Any],
    headers: PushHeaders,
    keys: Sequence[bytes],
    profile: PushProfile = PUSH_V2,
) -> bool:
    """Whether any of `keys` (a refreshed key and its predecessor) signed `body`; constant time."""
    given = headers.signature.encode("ascii", "replace")
    matches = [
        hmac.compare_digest(push_signature(body, headers.timestamp, key, profile).encode(), given)
        for key in keys
    ]
    return any(matches)


def push_business_key(body: Mapping[str, Any]) -> str | None:
    """What makes an event one event, however often it is re-sent (never `transactionId`).

    `{eventType}/order_id={data.order_id}`, else `{eventType}/orderNo={orderNo}/payId={payId}`;
    None when the event carries neither.
    """
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    event_type = _push_text(body.get("eventType")) or "?"
    order_id = _push_text(data.get("order_id"))
    if order_id:
        return f"{event_type}/order_id={order_id}"
    order_no, pay_id = _push_text(data.get("orderNo")), _push_text(data.get("payId"))
    if order_no and pay_id:
        return f"{event_type}/orderNo={order_no}/payId={pay_id}"
    return None


def _push_text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return clean_text(str(value)).strip()


@dataclass(frozen=True)
class PushedOrder:
    """The business data of a Recharge Success event, as text from the wire (cleaned).

    `amount` stays text here: the store keeps it exactly as sent and readers make it a Decimal.
    """

    transaction_id: str
    event_type: str
    event_time: str
    order_id: str
    order_no: str
    iccid: str
    package_code: str
    plan: str
    periods: str
    amount: str
    currency: str
    pay_id: str
    pay_time: str
    start_date: str
    expire_date: str


def parse_push_event(body: Mapping[str, Any]) -> PushedOrder:
    """The event's fields (missing ones empty); every string through `clean_text`."""
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    return PushedOrder(
        transaction_id=_push_text(body.get("transactionId")),
        event_type=_push_text(body.get("eventType")),
        event_time=_push_text(body.get("eventTime")),
        order_id=_push_text(data.get("order_id")),
        order_no=_push_text(data.get("orderNo")),
        iccid=_push_text(data.get("deviceCode")),
        package_code=_push_text(data.get("packageCode")),
        plan=_push_text(data.get("servicePlanShowName")),
        periods=_push_text(data.get("orderPeriod")),
        amount=_push_text(data.get("payAmount")),
        currency=_push_text(data.get("payCurrency")).upper(),
        pay_id=_push_text(data.get("payId")),
        pay_time=_push_text(data.get("payTime")),
        start_date=_push_text(data.get("startDate")),
        expire_date=_push_text(data.get("expireDate")),
    )
