"""The sandbox server's own limits: body size, the refused-request log, idle connections."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httphelp import http_client, http_get

from lf_bulk import wire
from lf_bulk.sandbox import seed, state
from lf_bulk.sandbox.app import MAX_BODY_BYTES
from lf_bulk.sandbox.server import SandboxServer, running_sandbox
from lf_bulk.sandbox.state import MutationRecord, SandboxState

from conftest import MakeSandbox

P = wire.CONTRACT_V1
RELAXED = "rate=1000,concurrency=50"


def _connect(server: SandboxServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=3)
    return sock


def _status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_a_huge_content_length_is_refused_with_413_before_the_body_is_read(
    make_sandbox: MakeSandbox,
) -> None:
    server = make_sandbox(RELAXED)
    path = P.add.path.format(group_id=seed.DEMO_GROUP)
    with _connect(server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n{{".encode()
        )
        started = time.monotonic()
        assert _status_line(sock) == "HTTP/1.1 413 Request Entity Too Large"
        assert time.monotonic() - started < 2
    (entry,) = server.state.mutation_log()
    assert (entry.http_status, entry.code, entry.request_id) == (413, "1001", "")


def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    yield b'{"iccids": ["'
    sent = 0
    while sent < total:
        yield b"8" * size
        sent += size
    yield b'"]}'


def test_a_chunked_body_is_cut_off_with_413_once_past_the_cap(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(RELAXED)
    path = P.add.path.format(group_id=seed.DEMO_GROUP)
    with http_client(base_url=server.base_url, timeout=10) as http:
        try:
            response = http.post(path, content=_chunks(MAX_BODY_BYTES + 256 * 1024))
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pytest.skip("the server closed the connection before the client read the 413")
    assert response.status_code == 413
    assert response.json()["code"] == wire.CODE_INVALID_PARAMETER


def test_a_body_within_the_cap_is_still_read_whole(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(RELAXED)
    path = P.add.path.format(group_id=seed.DEMO_GROUP)
    with http_client(base_url=server.base_url, timeout=10) as http:
        response = http.post(path, content=_chunks(MAX_BODY_BYTES // 2))
    # Read whole and parsed: refused for its content (no partnerCode), not for its size.
    assert (response.status_code, response.json()["code"]) == (200, wire.CODE_INVALID_PARAMETER)
    assert "partnerCode" in response.json()["message"]


def _refused(at: float, iccids: int = 3) -> MutationRecord:
    listed = tuple(f"89{n:017d}" for n in range(iccids))
    return MutationRecord(at, "POST", "/p", "G1", iccids, listed, "", 200, "1005", False)


def test_refused_requests_are_capped_in_the_log_and_accepted_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "REFUSED_LOG_LIMIT", 5)
    with SandboxState(tmp_path / "s.db", sims=500) as sandbox:
        accepted = MutationRecord(0.5, "POST", "/p", "G1", 1, ("1",), "R1", 200, "0000", False)
        sandbox.log_mutation(accepted)
        for n in range(12):
            sandbox.log_mutation(_refused(float(n + 1)))
        log = sandbox.mutation_log()
    refused = [m for m in log if not m.request_id]
    assert [m.at for m in refused] == [8.0, 9.0, 10.0, 11.0, 12.0]
    assert [m.request_id for m in log if m.request_id] == ["R1"]


def test_a_refused_request_keeps_its_count_but_not_every_iccid(tmp_path: Path) -> None:
    with SandboxState(tmp_path / "s.db", sims=500) as sandbox:
        sandbox.log_mutation(_refused(1.0, iccids=5_000))
        (entry,) = sandbox.mutation_log()
    assert entry.iccid_count == 5_000
    assert len(entry.iccids) == state.REFUSED_ICCIDS_KEPT < 5_000


def test_idle_connections_are_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "s.db", RELAXED, sims=500, idle_timeout=0.3) as server:
        socks = [_connect(server) for _ in range(20)]
        try:
            time.sleep(0.6)
            for sock in socks:
                assert sock.recv(1) == b"", "an idle connection was still open"
        finally:
            for sock in socks:
                sock.close()


def test_connections_past_the_limit_are_answered_503(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "s.db", RELAXED, sims=500, max_connections=4) as server:
        idle = [_connect(server) for _ in range(4)]
        try:
            time.sleep(0.1)
            request = wire.build_request(P, P.groups, seed.PARTNER)
            response = http_get(server.base_url + request.path, params=request.query, timeout=5)
            assert response.status_code == 503
        finally:
            for sock in idle:
                sock.close()
