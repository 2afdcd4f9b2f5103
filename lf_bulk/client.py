"""The Linksfield API client: one method per endpoint of the three services, on httpx.

The transport is the seam: tests pass `httpx.MockTransport`, cassettes or a real sandbox URL. Every
request is counted against the day's quota (a `QuotaGate`, when given), paced by a shared
`RequestPacer`, retried per `RetryPolicy`, and turned into model objects or a typed error from
`lf_bulk.errors` by the wire profile. Each service (bundle groups and orders, Vshop, Payment) has
its own base URL; a service without one uses `base_url`.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from lf_bulk import errors, redaction, wire
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
from lf_bulk.lazy import lazy_module
from lf_bulk.models import Operation, Service
from lf_bulk.pacing import Pacer, RequestPacer
from lf_bulk.retrying import RetryPolicy, call_with_retries
from lf_bulk.tls import tls_verification

if TYPE_CHECKING:
    import httpx
else:
    # Imported by the first client made: commands that send nothing start without it.
    httpx = lazy_module("httpx")

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
RAW_BODY_QUOTE_LIMIT = 300
# A Retry-After above this is taken as this: an hour is longer than any throttling we expect,
# and a larger (or infinite) value would hold every later request of the process back for good.
MAX_RETRY_AFTER_SECONDS = 3600.0
_RETRY_AFTER_DIGITS = re.compile(r"[0-9]{1,12}")


class QuotaGate(Protocol):
    """The day's request quota, as the client sees it (`lf_bulk.quota` keeps the count)."""

    def take(self) -> None:
        """Count one request about to be sent; raise `QuotaExhausted` when none is left."""

    def server_exhausted(self, resets_at: datetime) -> None:
        """The server said the day's quota is spent, until `resets_at`."""


@dataclass(frozen=True)
class _ServiceUrl:
    url: httpx.URL  # without userinfo
    display: str  # as it may be shown: never a password
    auth: tuple[str, str] | None


def _service_url(raw: str) -> _ServiceUrl:
    url = httpx.URL(raw.rstrip("/"))
    if not url.userinfo:
        return _ServiceUrl(url, raw.rstrip("/"), None)
    # Credentials in the URL are sent as Basic auth but never shown.
    redaction.register_secret(url.password)
    safe = url.copy_with(username=None, password=None)
    return _ServiceUrl(safe, str(safe), (url.username, url.password))


class LinksfieldClient:
    def __init__(
        self,
        base_url: str,
        partner_code: str,
        *,
        service_urls: Mapping[Service, str] | None = None,
        quota: QuotaGate | None = None,
        profile: wire.WireProfile = wire.CONTRACT_V1,
        transport: httpx.BaseTransport | None = None,
        pacer: Pacer | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float | None = None,
        verify_tls: bool = True,
        trust_env: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        given = dict(service_urls or {})
        self._services = {s: _service_url(given.get(s) or base_url) for s in Service}
        # Display-safe (no password): what messages, the journal and `doctor` show.
        self.base_url = self._services[Service.TOPUP].display
        self.service_urls = {s: u.display for s, u in self._services.items()}
        self.partner_code = partner_code
        self.quota = quota
        self.trust_env = trust_env
        self.verify_tls = verify_tls
        self.profile = profile
        self.pacer: Pacer = pacer or RequestPacer()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        if timeout is None:
            timeout = httpx.Timeout(
                DEFAULT_TIMEOUT_SECONDS, connect=DEFAULT_CONNECT_TIMEOUT_SECONDS
            )
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout,
            verify=tls_verification(verify_tls, trust_env),
            trust_env=trust_env,
            headers=dict(profile.headers),
        )

    def __enter__(self) -> LinksfieldClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ endpoints

    def list_groups(self) -> list[Group]:
        return wire.parse_groups(self._call(self.profile.groups))

    def member_page(self, group_id: str, page_no: int, page_size: int) -> MemberPage:
        data = self._call(
            self.profile.members,
            path_params={"group_id": group_id},
            params=wire.member_page_params(page_no, page_size),
        )
        return wire.parse_member_page(data)

    def iter_member_pages(
        self, group_id: str, page_size: int | None = None
    ) -> Iterator[MemberPage]:
        """Every page until the server's own total says we are past the end.

        Membership can change between pages, so a short page is not taken as the end by itself.
        """
        size = min(page_size or self.profile.max_page_size, self.profile.max_page_size)
        page_no = 1
        while True:
            page = self.member_page(group_id, page_no, size)
            yield page
            if page_no * size >= page.total or (
                not page.iccids and not page.rejected and page_no > 1
            ):
                return
            page_no += 1

    def list_members(
        self,
        group_id: str,
        *,
        page_size: int | None = None,
        on_page: Callable[[MemberPage], None] | None = None,
    ) -> list[str]:
        seen: dict[str, None] = {}
        rejected: dict[str, None] = {}
        for page in self.iter_member_pages(group_id, page_size):
            seen.update(dict.fromkeys(page.iccids))
            rejected.update(dict.fromkeys(page.rejected))
            if on_page:
                on_page(page)
        if rejected:
            shown = ", ".join(wire.shown_text(member, 40) for member in list(rejected)[:3])
            log.warning(
                "group %s: the server listed %d member id(s) that are not ICCIDs; they are "
                "left out: %s",
                wire.shown_text(group_id),
                len(rejected),
                shown + (", ..." if len(rejected) > 3 else ""),
            )
        return sorted(seen)

    def submit(self, operation: Operation, group_id: str, iccids: Sequence[str]) -> Submission:
        endpoint = self.profile.add if operation is Operation.ADD else self.profile.remove
        data = self._call(
            endpoint,
            path_params={"group_id": group_id},
            params=wire.iccid_params(iccids),
            mutating=True,
        )
        return wire.parse_submission(data)

    def add_sims(self, group_id: str, iccids: Sequence[str]) -> Submission:
        return self.submit(Operation.ADD, group_id, iccids)

    def remove_sims(self, group_id: str, iccids: Sequence[str]) -> Submission:
        return self.submit(Operation.REMOVE, group_id, iccids)

    def async_result(self, request_id: str) -> AsyncResult:
        data = self._call(self.profile.async_result, path_params={"request_id": request_id})
        return wire.parse_async_result(data)

    def find_orders(self, key_kind: str, key: str) -> list[Order]:
        """Orders for one key; `key_kind` is one of `wire.ORDER_KEYS`. Not found gives []."""
        if key_kind not in wire.ORDER_KEYS:
            raise ValueError(f"unknown order key kind {key_kind!r}")
        try:
            return wire.parse_orders(self._call(self.profile.order, params={key_kind: key}))
        except errors.OrderNotFound:
            return []

    # ------------------------------------------------------------ contract v2: Vshop

    def verify_card(self, iccid: str) -> CardInfo:
        """The card's status and area; `CardNotFound`, `CardNotOwned`... when it is not usable."""
        data = self._call(self.profile.verify, params=wire.device_params(iccid))
        return wire.parse_card(data, iccid)

    def plan_page(
        self, iccid: str, page_no: int, page_size: int, area: str | None = None
    ) -> tuple[int, list[PlanOffer]]:
        size = min(page_size, self.profile.max_plan_page_size)
        params = wire.plan_page_params(iccid, page_no, size, area)
        return wire.parse_plan_page(self._call(self.profile.plans, params=params))

    def list_plans(self, iccid: str, area: str | None = None) -> list[PlanOffer]:
        """Every plan the SIM can buy (all pages), in the server's order, each code once."""
        size = self.profile.max_plan_page_size
        plans: dict[str, PlanOffer] = {}
        page_no = 1
        while True:
            total, page = self.plan_page(iccid, page_no, size, area)
            for plan in page:
                plans.setdefault(plan.package_code, plan)
            if not page or page_no * size >= total:
                return list(plans.values())
            page_no += 1

    def held_plans(self, iccid: str) -> list[HeldPlan]:
        """The plans the SIM holds: in use, bought and not started, expired."""
        data = self._call(self.profile.held_orders, params=wire.device_params(iccid))
        return wire.parse_held_plans(data)

    def find_renewal(self, iccid: str) -> Renewal | None:
        """The SIM's active auto-renewal, or None."""
        try:
            data = self._call(self.profile.renewal, params=wire.device_params(iccid))
        except errors.RenewalNotFound:
            return None
        return wire.parse_renewal(data, iccid)

    def cancel_renewal(self, iccid: str, order_no: str, pay_id: str) -> None:
        """Cancel an auto-renewal (for good). Mutating: a lost answer is the caller's to settle."""
        params = wire.cancel_renewal_params(iccid, order_no, pay_id)
        self._call(self.profile.cancel_renewal, params=params, mutating=True)

    def create_order(self, top_up: TopUp) -> CreatedOrder:
        """Record a paid order and top the SIM up (SynOrderInfo). Mutating and not idempotent:
        retried only when the server provably did not act; a lost answer is the caller's to
        settle by looking `top_up.order_no` up (`find_orders("purchase_order_id", ...)`)."""
        params = wire.create_order_params(top_up)
        data = self._call(self.profile.create_order, params=params, mutating=True)
        return wire.parse_created_order(data, top_up)

    def payment_result(self, pay_id: str) -> PaymentResult:
        """A payment's status (Payment service `resultQuery`); `PayNotFound` for an unknown id."""
        data = self._call(self.profile.payment_result, params=wire.payment_params(pay_id))
        return wire.parse_payment(data, pay_id)

    # ------------------------------------------------------------ plumbing

    def _call(
        self,
        endpoint: wire.Endpoint,
        *,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        mutating: bool = False,
    ) -> Any:
        """One API call, retried per the policy; a `mutating` call only after a failure that
        proves the server did not act (any other failure is the caller's to settle).

        Every attempt is built anew (a Vshop call's `tradeTime` and signature are per attempt)
        and counted against the day's quota before it is sent.
        """
        service = self._services[endpoint.service]
        request = self._build(endpoint, path_params, params)

        def attempt() -> Any:
            nonlocal request
            if endpoint.trade is not wire.TradeGlobals.NONE:
                request = self._build(endpoint, path_params, params)
            with self.pacer.slot():
                if self.quota is not None:
                    self.quota.take()
                return self._send_once(service, request)

        def on_retry(error: BaseException, wait: float) -> None:
            # A network failure is worth a word at default verbosity; throttling is routine.
            level = logging.WARNING if isinstance(error, errors.TransportError) else logging.INFO
            log.log(
                level, "%s %s: %s; retrying in %.1fs", request.method, request.path, error, wait
            )

        return call_with_retries(
            attempt,
            self.retry,
            sleep=self._sleep,
            on_retry=on_retry,
            rng=self._rng,
            retryable=errors.proves_not_acted if mutating else errors.is_retryable,
        )

    def _build(
        self,
        endpoint: wire.Endpoint,
        path_params: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
    ) -> wire.WireRequest:
        request = wire.build_request(
            self.profile,
            endpoint,
            self.partner_code,
            path_params=path_params,
            params=params,
            clock=self._clock,
        )
        redaction.register_signature(str((request.query or request.body or {}).get("sign", "")))
        return request

    def _send_once(self, service: _ServiceUrl, request: wire.WireRequest) -> Any:
        log.debug("%s %s", request.method, request.path)
        base_url = service.display
        try:
            outgoing = self._http.build_request(
                request.method,
                str(service.url).rstrip("/") + request.path,
                params=request.query,
                json=request.body,
            )
        except httpx.InvalidURL as exc:
            # Ids are validated at the edge and encoded by the wire profile; this is what is
            # left, e.g. a key too long for a URL. Nothing was sent.
            raise errors.InputError(
                f"cannot send {request.method} {wire.shown_text(request.path)}: {exc}"
            ) from None
        try:
            response = self._http.send(outgoing, stream=True, auth=service.auth)
            try:
                response.read()
            except httpx.DecodingError as exc:
                raise _undecodable(base_url, response, exc) from None
            finally:
                response.close()
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise errors.ConnectFailed(
                f"{base_url}: could not connect ({type(exc).__name__})"
            ) from None
        except httpx.TimeoutException as exc:
            raise errors.TransportError(f"{base_url}: timed out ({type(exc).__name__})") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            # A permanent mistake in the URL: retrying cannot help.
            raise errors.InvalidSetting(f"{base_url}: not a usable http(s) URL ({exc})") from None
        except httpx.TransportError as exc:
            raise _transport_error(base_url, exc) from None
        return self._interpret(response, request, base_url)

    def _interpret(self, response: httpx.Response, request: wire.WireRequest, base_url: str) -> Any:
        text = response.text
        body = wire.decode_json(text)
        envelope = wire.parse_envelope(body, clean=not wire.holds_only_safe_text(text))
        if envelope is None:
            snippet = self._redacted(response.text, request)
            if response.status_code >= 400:
                raise errors.HttpStatusError(
                    response.status_code,
                    f"HTTP {response.status_code} from {base_url}: {snippet}",
                )
            raise errors.EnvelopeError(f"unrecognised answer from {base_url}: {snippet}")
        if envelope.ok:
            return envelope.data
        if wire.is_daily_quota(envelope):
            raise self._daily_quota_spent(response, base_url)
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        if response.status_code == 429 and retry_after is not None:
            self.pacer.hold_off(retry_after)
        raise wire.business_error(
            envelope, http_status=response.status_code, retry_after=retry_after
        )

    def _daily_quota_spent(self, response: httpx.Response, base_url: str) -> errors.QuotaExhausted:
        """The server's word that the day's quota is spent: a stop until its Retry-After (or the
        next UTC midnight), told to the quota gate so that no other call is sent today."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        wait = _retry_after_seconds(response.headers.get("Retry-After"), limit=None)
        resets_at = now + timedelta(seconds=wait) if wait is not None else next_utc_midnight(now)
        if self.quota is not None:
            self.quota.server_exhausted(resets_at)
        return errors.QuotaExhausted(
            f"{base_url} says today's request quota for this partner code is spent "
            f"(HTTP {response.status_code}, quota DAILY); it resets at "
            f"{resets_at:%Y-%m-%d %H:%M} UTC",
            resets_at=resets_at,
            source="server",
        )

    def _redacted(self, text: str, request: wire.WireRequest) -> str:
        sent = request.query or request.body or {}
        text = " ".join(wire.clean_text(text).split())[:RAW_BODY_QUOTE_LIMIT]
        return redact(text, [self.partner_code, str(sent.get("sign", ""))])


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _transport_error(base_url: str, exc: httpx.TransportError) -> errors.TransportError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return errors.TlsError(
                f"{base_url}: the server's TLS certificate could not be verified "
                f"({cause.verify_message}). Check the URL, or the machine's CA certificates."
            )
        if isinstance(cause, ConnectionRefusedError):
            return errors.ConnectionRefused(
                f"{base_url}: connection refused (nothing listens there)"
            )
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return errors.TlsError(f"{base_url}: the server's TLS certificate could not be verified")
    if isinstance(exc, httpx.ConnectError):
        return errors.ConnectFailed(f"{base_url}: {type(exc).__name__}: {exc or 'refused'}")
    return errors.TransportError(f"{base_url}: {type(exc).__name__}: {exc or 'connection failed'}")


def _undecodable(
    base_url: str, response: httpx.Response, exc: httpx.DecodingError
) -> errors.ApiError:
    """An answer whose body cannot be decoded (e.g. `Content-Encoding: gzip` on plain text).

    The server did answer, so for a mutating call the work may have been done: this is never a
    transport error that a retry could hide.
    """
    encoding = response.headers.get("Content-Encoding", "")
    what = f"Content-Encoding {wire.shown_text(encoding)}" if encoding else "its encoding"
    message = (
        f"HTTP {response.status_code} from {base_url}: the answer could not be decoded "
        f"({what} does not fit the body: {wire.clean_text(str(exc))})"
    )
    if response.status_code >= 400:
        return errors.HttpStatusError(response.status_code, message)
    return errors.EnvelopeError(message)


def next_utc_midnight(now: datetime) -> datetime:
    """When the UTC day of `now` ends (the daily quota's reset, contract v2 section 5)."""
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


# A day's quota resets within a day: a Retry-After beyond this is not believed.
MAX_QUOTA_WAIT_SECONDS = 86_400.0


def _retry_after_seconds(
    value: str | None, limit: float | None = MAX_RETRY_AFTER_SECONDS
) -> float | None:
    """Retry-After in seconds (digits or an HTTP date), at most `limit` (None: a day)."""
    cap = MAX_QUOTA_WAIT_SECONDS if limit is None else limit
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also takes '²' (one byte, 0xB2, in a latin-1 header),
    # which float() refuses.
    if _RETRY_AFTER_DIGITS.fullmatch(value):
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), cap)
