"""The sandbox's behaviour knobs, written as one spec string, and the dice that apply them.

A spec is a comma-separated list of ``key=value`` pairs, for example::

    latency=50ms,5xx=0.3,429=0.1,drop=0.05,async=5-30s,sim_locked=0.02,seed=42

Keys (every one optional; `FAULT_KEYS` lists them with their help text):

    latency       fixed delay before each API request is answered       (duration: 50ms, 1.5s)
    5xx           fraction answered 503 + code 1500, or 502 with an HTML page (fraction 0..1)
    429           fraction answered 429 + code 1429 and Retry-After: 1   (fraction 0..1)
    drop          fraction whose answer is lost *after* the work was done (fraction 0..1)
    drop_first    the first N add/remove answers are lost after the work was done  (integer >= 0)
    hold          add/remove answers are held this long after the work was done (duration)
    async         how long an add/remove takes to finish                 (5-30s, 200ms-1s, 2s)
    sim_locked    fraction of SIMs that fail with SIM_LOCKED             (fraction 0..1)
    sim_internal  fraction of SIMs that fail with INTERNAL               (fraction 0..1)
    expiry        how long async results are kept                        (duration: 30s, 7d)
    max_iccids    most ICCIDs accepted in one add/remove                 (integer >= 1)
    rate          requests per second per client IP (token bucket)       (number > 0)
    burst         token bucket capacity; defaults to `rate`              (number >= 1)
    concurrency   requests in flight per client IP                       (integer >= 1)
    partners      known partner codes, joined with "+"                   (P000270+P000999)
    seed          makes every random choice reproducible                 (integer)
    busy          fraction of Vshop and Payment calls answered SYSTEM_BUSY, not acted on
                                                                         (fraction 0..1)
    daily_quota   requests per partner code per UTC day, every service and call counted;
                  past it HTTP 429, code 1429, data.quota DAILY         (integer >= 0, or off)
    push_dup      fraction of delivered Recharge Success pushes sent again later with a new
                  transactionId and the same data (`--push-url`)         (fraction 0..1)
    push_time_scale  the push retry schedule (30 tries within 24 h) times this factor, so that
                  tests run it in a second                              (number > 0, e.g. 1e-5)

When a key is given twice, the last value wins. Faults apply to the API endpoints only: `drop`,
`5xx`, `429` and `latency` to every one of them (Vshop and Payment included), `drop_first` and
`hold` to the calls that act (add, remove, cancelAutoRenewalRecord, SynOrderInfo).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from lf_bulk.sandbox.state import Rules

DAY = 86_400.0

FAULT_KEYS: dict[str, str] = {
    "latency": "a duration such as 50ms or 1.5s",
    "5xx": "a fraction between 0 and 1 such as 0.3",
    "429": "a fraction between 0 and 1 such as 0.1",
    "drop": "a fraction between 0 and 1 such as 0.05",
    "drop_first": "a whole number of at least 0 such as 1",
    "hold": "a duration such as 2s",
    "async": "a duration or a range of durations such as 5-30s, 200ms-1s or 2s",
    "sim_locked": "a fraction between 0 and 1 such as 0.02",
    "sim_internal": "a fraction between 0 and 1 such as 0.01",
    "expiry": "a duration such as 30s, 10m or 7d",
    "max_iccids": "a whole number of at least 1 such as 500",
    "rate": "a number of requests per second above 0 such as 10",
    "burst": "a number of requests of at least 1 such as 10",
    "concurrency": "a whole number of at least 1 such as 3",
    "partners": "partner codes joined with '+' such as P000270+P000999",
    "seed": "a whole number such as 42",
    "busy": "a fraction between 0 and 1 such as 0.1",
    "daily_quota": "a whole number of requests of at least 0 such as 5000, or off",
    "push_dup": "a fraction between 0 and 1 such as 0.2",
    "push_time_scale": "a number above 0 such as 0.001",
}

# Spec key -> FaultSpec field, where they differ (spec keys such as "5xx" are not identifiers).
_FIELD_OF_KEY = {
    "5xx": "error_rate",
    "429": "throttle_rate",
    "drop": "drop_rate",
    "async": "async_delay",
    "sim_locked": "sim_locked_rate",
    "sim_internal": "sim_internal_rate",
    "busy": "busy_rate",
    "push_dup": "push_dup_rate",
}

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, None: 1.0}
# The state's rules hold the simulator's defaults; the spec starts from them.
_DEFAULT_RULES = Rules()


@dataclass(frozen=True)
class FaultSpec:
    """Parsed spec; the defaults are a well-behaved sandbox (no faults, contract-v1 limits)."""

    latency: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    drop_first: int = 0
    hold: float = 0.0
    async_delay: tuple[float, float] = _DEFAULT_RULES.async_delay
    sim_locked_rate: float = _DEFAULT_RULES.sim_locked_rate
    sim_internal_rate: float = _DEFAULT_RULES.sim_internal_rate
    expiry: float = _DEFAULT_RULES.result_ttl
    max_iccids: int = _DEFAULT_RULES.max_iccids
    rate: float = 10.0
    burst: float | None = None
    concurrency: int = 3
    partners: tuple[str, ...] = tuple(sorted(_DEFAULT_RULES.partners))
    seed: int | None = _DEFAULT_RULES.seed
    busy_rate: float = 0.0
    daily_quota: int | None = _DEFAULT_RULES.daily_quota
    push_dup_rate: float = 0.0
    push_time_scale: float = 1.0

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Raise ValueError naming the key and what it allows when `spec` is malformed."""
        values: dict[str, Any] = {}
        for item in (spec or "").split(","):
            item = item.strip()
            if not item:
                continue
            key, value = _split_item(item)
            values[_FIELD_OF_KEY.get(key, key)] = _PARSERS[key](key, value)
        parsed = cls(**values)
        if parsed.sim_locked_rate + parsed.sim_internal_rate > 1.0:
            raise ValueError("faults: sim_locked + sim_internal must not exceed 1")
        return parsed

    @property
    def bucket_capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate)

    def rules(self) -> Rules:
        """The part of the spec the state applies when it runs an operation."""
        return Rules(
            partners=frozenset(self.partners),
            max_iccids=self.max_iccids,
            result_ttl=self.expiry,
            async_delay=self.async_delay,
            sim_locked_rate=self.sim_locked_rate,
            sim_internal_rate=self.sim_internal_rate,
            seed=self.seed,
            daily_quota=self.daily_quota,
        )

    def describe(self) -> str:
        """The non-default settings as a spec string ("none" when there are none)."""
        default = FaultSpec()
        parts = []
        for key in FAULT_KEYS:
            name = _FIELD_OF_KEY.get(key, key)
            value = getattr(self, name)
            if value != getattr(default, name):
                parts.append(f"{key}={_render(value)}")
        return ",".join(parts) or "none"


def coerce_faults(faults: FaultSpec | str | None) -> FaultSpec:
    return faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)


# ---------------------------------------------------------------- parsing


def _split_item(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip().lower()
    if key not in FAULT_KEYS:
        allowed = ", ".join(FAULT_KEYS)
        raise ValueError(f"faults: unknown key {key!r} in {item!r}; allowed keys: {allowed}")
    if not sep or not value.strip():
        raise ValueError(f"faults: {key!r} needs a value: {FAULT_KEYS[key]}")
    return key, value.strip()


def _bad(key: str, value: str) -> ValueError:
    return ValueError(f"faults: bad value {value!r} for {key!r}: expected {FAULT_KEYS[key]}")


def _fraction(key: str, value: str) -> float:
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise _bad(key, value) from None
    if not 0.0 <= number <= 1.0:
        raise _bad(key, value)
    return number


def _seconds(key: str, value: str, default_unit: str | None = None) -> float:
    match = _DURATION.fullmatch(value.strip().lower())
    if not match:
        raise _bad(key, value)
    unit = match["unit"] or default_unit
    return float(match["number"]) * _UNIT_SECONDS[unit]


def _duration(key: str, value: str) -> float:
    return _seconds(key, value)


def _delay_range(key: str, value: str) -> tuple[float, float]:
    low_text, dash, high_text = value.partition("-")
    if not dash:
        fixed = _seconds(key, value)
        return fixed, fixed
    # "5-30s": the unit written once at the end applies to both ends.
    high_match = _DURATION.fullmatch(high_text.strip().lower())
    if not high_match:
        raise _bad(key, value)
    low = _seconds(key, low_text, default_unit=high_match["unit"])
    high = _seconds(key, high_text)
    if low > high:
        raise _bad(key, value)
    return low, high


def _integer(minimum: int | None) -> Callable[[str, str], int]:
    def parse(key: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise _bad(key, value) from None
        if minimum is not None and number < minimum:
            raise _bad(key, value)
        return number

    return parse


def _positive_number(minimum: float, *, inclusive: bool) -> Callable[[str, str], float]:
    def parse(key: str, value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise _bad(key, value) from None
        too_small = number < minimum if inclusive else number <= minimum
        if too_small or not math.isfinite(number):
            raise _bad(key, value)
        return number

    return parse


def _quota(key: str, value: str) -> int | None:
    if value.strip().lower() == "off":
        return None
    return _integer(0)(key, value)


def _partners(key: str, value: str) -> tuple[str, ...]:
    codes = tuple(code.strip() for code in value.split("+"))
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", code) for code in codes):
        raise _bad(key, value)
    return codes


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "latency": _duration,
    "5xx": _fraction,
    "429": _fraction,
    "drop": _fraction,
    "drop_first": _integer(0),
    "hold": _duration,
    "async": _delay_range,
    "sim_locked": _fraction,
    "sim_internal": _fraction,
    "expiry": _duration,
    "max_iccids": _integer(1),
    "rate": _positive_number(0.0, inclusive=False),
    "burst": _positive_number(1.0, inclusive=True),
    "concurrency": _integer(1),
    "partners": _partners,
    "seed": _integer(None),
    "busy": _fraction,
    "daily_quota": _quota,
    "push_dup": _fraction,
    "push_time_scale": _positive_number(0.0, inclusive=False),
}

assert set(_PARSERS) == set(FAULT_KEYS)
assert {_FIELD_OF_KEY.get(k, k) for k in FAULT_KEYS} == {f.name for f in fields(FaultSpec)}


def _render(value: Any) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], float):
        low, high = value
        return f"{low:g}s" if low == high else f"{low:g}-{high:g}s"
    if isinstance(value, tuple):
        return "+".join(value)
    if value is None:
        return "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------- the dice


@dataclass(frozen=True)
class Fate:
    """What the faults do to one API request."""

    error_status: int | None  # 503 (JSON envelope) or 502 (proxy HTML page)
    throttled: bool
    dropped: bool


class FaultDice:
    """Rolls one `Fate` per API request; the same seed gives the same sequence of fates."""

    def __init__(self, spec: FaultSpec) -> None:
        self._spec = spec
        self._rng = random.Random(spec.seed)

    def roll(self) -> Fate:
        # Always draw the same four numbers, so one request's fate never shifts the next ones'.
        error, kind, throttle, drop = (self._rng.random() for _ in range(4))
        error_status = None
        if error < self._spec.error_rate:
            error_status = 503 if kind < 0.5 else 502
        return Fate(
            error_status=error_status,
            throttled=throttle < self._spec.throttle_rate,
            dropped=drop < self._spec.drop_rate,
        )
