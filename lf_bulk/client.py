"""The Linksfield Topup API client: one method per endpoint, on httpx.

The transport is the seam: tests pass `httpx.MockTransport`, cassettes or a real sandbox URL. Every
request is paced by a shared `RequestPacer`, retried per `RetryPolicy`, and turned into model objects
or a typed error from `lf_bulk.errors` by the wire profile.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from lf_bulk import errors, redaction, wire
from lf_bulk.models import AsyncResult, Group, MemberPage, Operation, Order, Submission
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy, call_with_retries

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RAW_BODY_QUOTE_LIMIT = 300
# A Retry-After above this is taken as this: an hour is longer than any throttling we expect,
# and a larger (or infinite) value would hold every later request of the process back for good.
MAX_RETRY_AFTER_SECONDS = 3600.0
_RETRY_AFTER_DIGITS = re.compile(r"[0-9]{1,12}")


class LinksfieldClient:
    def __init__(
        self,
        base_url: str,
        partner_code: str,
        *,
        profile: wire.WireProfile = wire.CONTRACT_V1,
        transport: httpx.BaseTransport | None = None,
        pacer: RequestPacer | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify_tls: bool = True,
        trust_env: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        url = httpx.URL(base_url.rstrip("/"))
        # Credentials in the URL are sent as Basic auth but never shown: `base_url` is display-safe.
        auth = (url.username, url.password) if url.userinfo else None
        redaction.register_secret(url.password)
        safe_url = url.copy_with(username=None, password=None) if auth else url
        self.base_url = str(safe_url) if auth else base_url.rstrip("/")
        self.partner_code = partner_code
        self.trust_env = trust_env
        self.profile = profile
        self.pacer = pacer or RequestPacer()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.Client(
            base_url=safe_url,
            transport=transport,
            timeout=timeout,
            verify=verify_tls,
            trust_env=trust_env,
            auth=auth,
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
        proves the server did not act (any other failure is the caller's to settle)."""
        request = wire.build_request(
            self.profile, endpoint, self.partner_code, path_params=path_params, params=params
        )
        redaction.register_signature(str((request.query or request.body or {}).get("sign", "")))

        def attempt() -> Any:
            with self.pacer.slot():
                return self._send_once(request)

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

    def _send_once(self, request: wire.WireRequest) -> Any:
        log.debug("%s %s", request.method, request.path)
        try:
            outgoing = self._http.build_request(
                request.method, request.path, params=request.query, json=request.body
            )
        except httpx.InvalidURL as exc:
            # Ids are validated at the edge and encoded by the wire profile; this is what is
            # left, e.g. a key too long for a URL. Nothing was sent.
            raise errors.InputError(
                f"cannot send {request.method} {wire.shown_text(request.path)}: {exc}"
            ) from None
        try:
            response = self._http.send(outgoing, stream=True)
            try:
                response.read()
            except httpx.DecodingError as exc:
                raise _undecodable(self.base_url, response, exc) from None
            finally:
                response.close()
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise errors.ConnectFailed(
                f"{self.base_url}: could not connect ({type(exc).__name__})"
            ) from None
        except httpx.TimeoutException as exc:
            raise errors.TransportError(
                f"{self.base_url}: timed out ({type(exc).__name__})"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            # A permanent mistake in the URL: retrying cannot help.
            raise errors.InvalidSetting(
                f"{self.base_url}: not a usable http(s) URL ({exc})"
            ) from None
        except httpx.TransportError as exc:
            raise _transport_error(self.base_url, exc) from None
        return self._interpret(response, request)

    def _interpret(self, response: httpx.Response, request: wire.WireRequest) -> Any:
        body = wire.decode_json(response.text)
        envelope = wire.parse_envelope(body)
        if envelope is None:
            snippet = self._redacted(response.text, request)
            if response.status_code >= 400:
                raise errors.HttpStatusError(
                    response.status_code,
                    f"HTTP {response.status_code} from {self.base_url}: {snippet}",
                )
            raise errors.EnvelopeError(f"unrecognised answer from {self.base_url}: {snippet}")
        if envelope.ok:
            return envelope.data
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        if response.status_code == 429 and retry_after is not None:
            self.pacer.hold_off(retry_after)
        raise wire.business_error(
            envelope, http_status=response.status_code, retry_after=retry_after
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


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also takes '²' (one byte, 0xB2, in a latin-1 header),
    # which float() refuses.
    if _RETRY_AFTER_DIGITS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER_SECONDS)
