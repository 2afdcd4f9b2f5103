"""Pushing Recharge Success events at a receiver in tests: events, signed posts, a subprocess
receiver, and an open-loop load generator."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from httphelp import http_client

from lf_bulk import wire

KEY_HEX = "8f3a0c1d2e4b5a69788796a5b4c3d2e1"
KEY_ID = "key-1"
_URL = re.compile(r"receiving pushes at (\S+)")


def event(
    order_id: str, transaction_id: str = "T1", amount: str = "12.30", currency: str = "EUR",
    iccid: str = "89852420180910340793",
) -> dict[str, object]:  # fmt: skip
    return {
        "transactionId": transaction_id,
        "eventType": "RECHARGE_SUCCESS",
        "eventTime": "1780000000000",
        "data": {
            "orderNo": f"N-{order_id}",
            "order_id": order_id,
            "deviceCode": iccid,
            "packageCode": "DP20190726001274",
            "servicePlanShowName": "Europe 5GB",
            "orderPeriod": "2",
            "payAmount": amount,
            "payCurrency": currency,
            "payId": f"pay-{order_id}",
            "payTime": "2026-11-29 08:00:00",
            "startDate": "2026-11-29",
            "expireDate": "2026-12-29",
        },
    }


def push(client: httpx.Client, url: str, body: dict[str, object]) -> httpx.Response:
    headers = wire.sign_push(body, KEY_ID, KEY_HEX)
    return client.post(url, content=wire.push_body_bytes(body), headers=headers)


@dataclass
class ReceiverProcess:
    process: subprocess.Popen[str]
    url: str
    stderr: list[str] = field(default_factory=list)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> str:
        """Ctrl-C, then everything it wrote on stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        assert self.process.stderr is not None
        return "".join(self.stderr) + self.process.stderr.read()


def start_receiver(home: Path, *extra: str, verbose: bool = False) -> ReceiverProcess:
    """`lf-bulk notify serve --port 0` in a subprocess, the key in its environment."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LF_BULK_NOTIFY_KEY": KEY_HEX}
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs", *(["-vv"] if verbose else []), "--home", str(home), "notify", "serve", "--port", "0",
         "--key-id", KEY_ID, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = _URL.search(line)
        if found:
            return ReceiverProcess(process, found.group(1), seen)
    process.kill()
    raise AssertionError(f"the receiver did not start: {''.join(seen)}")


@dataclass
class LoadResult:
    sent: int
    seconds: float
    answers: list[tuple[str, int, float]]
    """(order id, HTTP status, seconds to the answer) per push."""

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    def percentile(self, fraction: float) -> float:
        times = sorted(t for _, _, t in self.answers)
        return times[min(len(times) - 1, int(len(times) * fraction))]


def load(url: str, order_ids: Sequence[str], *, rate: float, workers: int = 16) -> LoadResult:
    """Push one event per entry of `order_ids` (a repeated id is a re-send with a new
    transaction id), each at its scheduled time: open loop, so a slow answer cannot slow the
    offered rate down."""
    local = threading.local()
    clients: list[httpx.Client] = []
    answers: list[tuple[str, int, float]] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def one(index: int, order_id: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = http_client(timeout=10)
            with lock:
                clients.append(client)
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        status = push(client, url, event(order_id, transaction_id=f"T{index}")).status_code
        with lock:
            answers.append((order_id, status, time.perf_counter() - began))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(len(order_ids)), order_ids))
    for client in clients:
        client.close()
    return LoadResult(len(order_ids), time.perf_counter() - start, answers)
