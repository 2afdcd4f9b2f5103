"""When and how long to wait before sending a request again (tenacity does the looping)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from lf_bulk.errors import ConnectionRefused, HttpStatusError, RateLimited, is_retryable
from lf_bulk.lazy import lazy_module

if TYPE_CHECKING:
    import tenacity
else:
    tenacity = lazy_module("tenacity")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, under a total deadline; Retry-After wins when given."""

    max_attempts: int = 8
    deadline_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    # A refused connection means nothing listens there: usually a wrong URL or a server that is
    # down, rarely a restart in progress. Worth a few quick tries, not the whole deadline.
    refused_max_attempts: int = 4
    refused_deadline_seconds: float = 3.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)


def server_requested_wait(error: BaseException | None) -> float | None:
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return error.retry_after
    if isinstance(error, HttpStatusError) and error.status_code == 429:
        return 1.0
    return None


def call_with_retries(
    func: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None],
    on_retry: Callable[[BaseException, float], None] | None = None,
    rng: random.Random | None = None,
    retryable: Callable[[BaseException], bool] = is_retryable,
) -> T:
    """Call `func` until it succeeds, raises what `retryable` refuses, or the policy gives up."""
    rng = rng or random.Random()
    refused = _RefusedBudget(policy)

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        requested = server_requested_wait(error)
        seconds = requested if requested is not None else policy.backoff(state.attempt_number, rng)
        if isinstance(error, ConnectionRefused):
            seconds = refused.spend(seconds)
        return seconds

    def announce(state: tenacity.RetryCallState) -> None:
        # Only before a sleep that happens: the wait is also computed for the attempt that stops.
        error = state.outcome.exception() if state.outcome else None
        if on_retry and error is not None:
            on_retry(error, state.upcoming_sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        stop=tenacity.stop_any(
            tenacity.stop_after_attempt(policy.max_attempts),
            tenacity.stop_before_delay(policy.deadline_seconds),
            cast("tenacity.stop.stop_base", refused),  # a callable stop, see _RefusedBudget
        ),
        wait=wait,
        before_sleep=announce,
        sleep=sleep,
        reraise=True,
    )
    return retrying(func)


class _RefusedBudget:
    """How many refused connections, and how much waiting after them, one call may spend.

    A stop condition for tenacity: any callable of the retry state combines with `|`."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.refusals = 0
        self.waited = 0.0

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if not isinstance(error, ConnectionRefused):
            return False
        self.refusals += 1
        return (
            self.refusals >= self.policy.refused_max_attempts
            or self.waited >= self.policy.refused_deadline_seconds
        )

    def spend(self, seconds: float) -> float:
        seconds = min(seconds, max(0.0, self.policy.refused_deadline_seconds - self.waited))
        self.waited += seconds
        return seconds
