"""Client-side request pacing shared by every thread of a process: a rate and a cap on requests in flight.

Requests are spaced evenly (1/rate apart) rather than allowed to burst, so a server that counts
requests in any one-second window never sees more than `rate` of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Pacer(Protocol):
    """What the client asks of a pacer: this module's, or a store's shared one."""

    max_in_flight: int

    def slot(self) -> AbstractContextManager[None]: ...

    def hold_off(self, seconds: float) -> None: ...


class RequestPacer:
    def __init__(
        self,
        rate_per_second: float = 10.0,
        max_in_flight: int = 3,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0 or max_in_flight < 1:
            raise ValueError("rate must be positive and max_in_flight at least 1")
        self.interval = 1.0 / rate_per_second
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._next_start = 0.0

    def _reserve_start(self) -> float:
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
            return start - now

    def hold_off(self, seconds: float) -> None:
        """Push every later request back, e.g. after the server said Retry-After."""
        with self._lock:
            self._next_start = max(self._next_start, self._clock() + seconds)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            wait = self._reserve_start()
            if wait > 0:
                self._sleep(wait)
            yield
