"""Set-up checks: reachability, signature, envelope and clock, each a pass or a reason; and the
API contract the checks speak."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lf_bulk import errors, wire
from lf_bulk.lazy import lazy_module
from lf_bulk.tls import tls_verification

if TYPE_CHECKING:
    import httpx

    from lf_bulk.client import LinksfieldClient
else:
    httpx = lazy_module("httpx")

MAX_CLOCK_SKEW_SECONDS = 300


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def describe_contract(profile: wire.WireProfile) -> str:
    """The contract version `profile` speaks and where it is written down, e.g. for a UAT ticket."""
    return f"{profile.contract_version} ({wire.CONTRACT_DOC})"


def run_checks(client: LinksfieldClient) -> list[Check]:
    checks = [_clock(client)]
    try:
        groups = client.list_groups()
    except errors.TransportError as error:
        return [*checks, Check("reachable", False, str(error))]
    except errors.SignatureRejected as error:
        return [
            *checks,
            Check("reachable", True, "answered"),
            Check("signature", False, str(error)),
        ]
    except errors.EnvelopeError as error:
        return [
            *checks,
            Check("reachable", True, "answered"),
            Check("envelope", False, str(error)),
        ]
    except errors.ApiError as error:
        return [*checks, Check("reachable", False, str(error))]
    return [
        *checks,
        Check("reachable", True, client.base_url),
        Check("signature", True, "accepted"),
        Check("envelope", True, f"recognised ({len(groups)} groups)"),
    ]


def _clock(client: LinksfieldClient) -> Check:
    try:
        response = httpx.head(
            client.base_url,
            timeout=10,
            verify=tls_verification(client.verify_tls, client.trust_env),
            trust_env=client.trust_env,
        )
    except httpx.HTTPError as error:
        return Check("clock", False, f"could not read the server's time: {type(error).__name__}")
    header = response.headers.get("Date")
    if not header:
        return Check("clock", True, "server sent no Date header; not checked")
    skew = time.time() - email.utils.parsedate_to_datetime(header).timestamp()
    passed = abs(skew) <= MAX_CLOCK_SKEW_SECONDS
    return Check("clock", passed, f"local clock is {skew:+.0f}s from the server's")
