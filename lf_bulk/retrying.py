"""When and how long to wait before sending a request again (tenacity does the looping)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from lf_bulk.errors import HttpStatusError, RateLimited, is_retryable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, under a total deadline; Retry-After wins when given."""

    max_attempts: int = 8
    deadline_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0

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

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        requested = server_requested_wait(error)
        seconds = requested if requested is not None else policy.backoff(state.attempt_number, rng)
        if on_retry and error is not None:
            on_retry(error, seconds)
        return seconds

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        stop=tenacity.stop_after_attempt(policy.max_attempts)
        | tenacity.stop_before_delay(policy.deadline_seconds),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )
    return retrying(func)
