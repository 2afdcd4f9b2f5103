"""Contract v2's faults in the sandbox: SYSTEM_BUSY, lost Vshop answers, and the daily quota."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from httphelp import http_get
from vshophelp import CANCEL, PAYMENT, RENEWAL, VERIFY, Vshop

from jobs.cli import cli
from lf_bulk import wire
from lf_bulk.sandbox import cards, seed
from lf_bulk.sandbox.faults import FaultSpec
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.sandbox.state import SandboxState

RELAXED = "rate=1000,concurrency=50"
MakeSandbox = Callable[..., SandboxServer]


def groups_list(server: SandboxServer, partner: str = seed.PARTNER) -> httpx.Response:
    request = wire.build_request(wire.CONTRACT_V1, wire.CONTRACT_V1.groups, partner)
    return http_get(server.base_url + request.path, params=request.query, timeout=10)


def seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - now).total_seconds()


# ---------------------------------------------------------------- the spec


def test_the_spec_has_busy_and_daily_quota_keys() -> None:
    spec = FaultSpec.parse("busy=0.1,daily_quota=1000")
    assert (spec.busy_rate, spec.daily_quota) == (0.1, 1000)
    assert spec.rules().daily_quota == 1000
    assert FaultSpec.parse(spec.describe()) == spec
    assert FaultSpec().daily_quota is None and FaultSpec().busy_rate == 0.0  # off by default
    assert FaultSpec.parse("daily_quota=5,daily_quota=off").daily_quota is None
    assert FaultSpec.parse("daily_quota=0").daily_quota == 0
    for bad in ("busy=2", "daily_quota=-1", "daily_quota=lots"):
        with pytest.raises(ValueError, match=re.escape(repr(bad.split("=")[0]))):
            FaultSpec.parse(bad)


# ---------------------------------------------------------------- SYSTEM_BUSY


def test_a_busy_answer_is_not_acted_on(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(f"{RELAXED},busy=1")
    client = Vshop(server)
    try:
        (iccid,) = server.state.iccids_with(renewal=True, limit=1)
        renewal = server.state.renewal(iccid)
        assert renewal is not None
        keys = {"orderNo": renewal["orderNo"], "payId": renewal["payId"]}
        response = client.call(CANCEL, deviceCode=iccid, **keys)
        assert response.status_code == 200
        assert response.json()["errorCode"] == cards.SYSTEM_BUSY
        assert server.state.renewal(iccid) == renewal  # not cancelled
        (logged,) = server.state.vshop_calls()
        assert (logged.trade_type, logged.device_code, logged.code) == (
            "cancelAutoRenewalRecord",
            iccid,
            cards.SYSTEM_BUSY,
        )
        assert not logged.acted and not server.state.vshop_call_counts()
        assert groups_list(server).json()["code"] == wire.CODE_OK  # contract v1 is never busy
    finally:
        client.close()


def test_a_share_of_vshop_calls_is_busy_and_the_share_repeats_with_a_seed(
    make_sandbox: MakeSandbox,
) -> None:
    def codes() -> list[str]:
        server = make_sandbox(f"{RELAXED},busy=0.3,seed=7")
        client = Vshop(server)
        try:
            iccids = server.state.iccids_with(limit=40)
            return [client.call(VERIFY, deviceCode=i).json().get("errorCode", "") for i in iccids]
        finally:
            client.close()

    first = codes()
    assert first == codes()
    assert 3 <= first.count(cards.SYSTEM_BUSY) <= 25
    assert set(first) == {"", cards.SYSTEM_BUSY}


# ---------------------------------------------------------------- lost answers


def test_a_dropped_cancel_answer_was_acted_on(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(f"{RELAXED},drop_first=1")
    client = Vshop(server)
    try:
        first, second = server.state.iccids_with(renewal=True, limit=2)
        renewals = [server.state.renewal(i) for i in (first, second)]
        for iccid, renewal in zip((first, second), renewals, strict=True):
            assert renewal is not None
            keys = {"orderNo": renewal["orderNo"], "payId": renewal["payId"]}
            if iccid == first:
                with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                    client.call(CANCEL, deviceCode=iccid, **keys)
            else:  # only the first mutating answer is lost
                assert client.ok(CANCEL, deviceCode=iccid, **keys) == {}
        assert set(server.state.cancelled_renewals()) == {first, second}
        logged = server.state.vshop_calls("cancelAutoRenewalRecord")
        assert [(c.device_code, c.acted, c.dropped) for c in logged] == [
            (first, True, True),
            (second, True, False),
        ]
        assert client.ok(RENEWAL, deviceCode=first) is None  # a look-up settles it
    finally:
        client.close()


def test_drop_loses_vshop_and_payment_answers_too(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(f"{RELAXED},drop=1")
    client = Vshop(server)
    try:
        (iccid,) = server.state.iccids_with(limit=1)
        for path, params in ((VERIFY, {"deviceCode": iccid}), (PAYMENT, {"payId": "pi_x"})):
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                client.call(path, **params)
        assert [(c.trade_type, c.acted, c.dropped) for c in server.state.vshop_calls()] == [
            ("singleVerify", True, True),
            ("resultQuery", True, True),
        ]
    finally:
        client.close()


def test_5xx_and_throttling_on_vshop_paths_use_the_vshop_envelope(
    make_sandbox: MakeSandbox,
) -> None:
    for spec, status, code in (("5xx=1,seed=3", 503, "1500"), ("429=1", 429, "1429")):
        server = make_sandbox(f"{RELAXED},{spec}")
        client = Vshop(server)
        try:
            (iccid,) = server.state.iccids_with(limit=1)
            responses = [client.call(VERIFY, deviceCode=iccid) for _ in range(6)]
        finally:
            client.close()
        enveloped = [r for r in responses if r.status_code == status]
        assert enveloped, [r.status_code for r in responses]
        for response in enveloped:
            assert (response.json()["operateCode"], response.json()["errorCode"]) == ("F", code)
        assert not server.state.vshop_call_counts()  # none acted on


# ---------------------------------------------------------------- the daily quota


def test_the_daily_quota_counts_every_service_and_answers_429_daily(
    make_sandbox: MakeSandbox,
) -> None:
    server = make_sandbox(f"{RELAXED},daily_quota=3")
    client = Vshop(server)
    try:
        (iccid,) = server.state.iccids_with(limit=1)
        assert groups_list(server).json()["code"] == wire.CODE_OK
        client.ok(VERIFY, deviceCode=iccid)
        assert client.error(PAYMENT, payId="pi_unknown") == cards.PAY_NOT_FOUND  # counts too
        assert server.state.quota_used() == 3

        refused = client.call(VERIFY, deviceCode=iccid)
        body = refused.json()
        assert refused.status_code == 429
        assert (body["operateCode"], body["errorCode"]) == ("F", wire.CODE_RATE_LIMITED)
        assert (body["data"]["quota"], body["data"]["limit"], body["data"]["used"]) == (
            "DAILY",
            3,
            3,
        )
        midnight = datetime.combine(
            datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC
        )
        assert body["data"]["resets_at"] == midnight.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert abs(int(refused.headers["Retry-After"]) - seconds_to_midnight()) <= 5

        v1 = groups_list(server)
        assert v1.status_code == 429 and v1.json()["code"] == wire.CODE_RATE_LIMITED
        assert v1.json()["data"]["quota"] == "DAILY" and int(v1.headers["Retry-After"]) > 0
        assert server.state.quota_used() == 3  # refusals are not counted
        assert [c.acted for c in server.state.vshop_calls(VERIFY[1:])] == [True, False]

        server.state.new_day()
        assert server.state.quota_used() == 0
        assert client.ok(VERIFY, deviceCode=iccid)["deviceCode"] == iccid
    finally:
        client.close()


def test_the_daily_quota_is_per_partner_code(make_sandbox: MakeSandbox) -> None:
    server = make_sandbox(f"{RELAXED},daily_quota=1,partners={seed.PARTNER}+{seed.OTHER_PARTNER}")
    assert groups_list(server).status_code == 200
    assert groups_list(server).status_code == 429
    assert groups_list(server, seed.OTHER_PARTNER).status_code == 200
    assert server.state.quota_used(seed.OTHER_PARTNER) == 1


def test_the_quota_day_is_the_utc_day_of_the_sandbox_clock(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 29, 23, 59, 30, tzinfo=UTC).timestamp()]
    rules = FaultSpec.parse("daily_quota=1").rules()
    with SandboxState(
        tmp_path / "s.db", rules=rules, sims=seed.MIN_SIMS, clock=lambda: now[0]
    ) as state:
        assert state.take_quota(seed.PARTNER) is None
        spent = state.take_quota(seed.PARTNER)
        assert spent is not None and (spent.used, spent.limit, spent.retry_after) == (1, 1, 30)
        now[0] += 31  # the next UTC day
        assert state.take_quota(seed.PARTNER) is None


def test_two_processes_on_one_state_file_share_the_quota(
    tmp_path: Path, fresh_world: Callable[..., Path]
) -> None:
    path = fresh_world(tmp_path / "s.db", seed.MIN_SIMS)
    rules = FaultSpec.parse("daily_quota=3").rules()
    with SandboxState(path, rules=rules) as one, SandboxState(path, rules=rules) as other:
        assert [one.take_quota(seed.PARTNER), other.take_quota(seed.PARTNER)] == [None, None]
        assert one.take_quota(seed.PARTNER) is None
        assert other.take_quota(seed.PARTNER) is not None
        assert one.quota_used() == other.quota_used() == 3
        other.new_day()
        assert one.quota_used() == 0


def test_without_a_quota_nothing_is_counted(sandbox: SandboxServer) -> None:
    for _ in range(3):
        assert groups_list(sandbox).status_code == 200
    assert sandbox.state.take_quota(seed.PARTNER) is None
    assert sandbox.state.quota_used() == 0


# ---------------------------------------------------------------- command line


def test_new_day_resets_the_quota_of_a_state_file(
    tmp_path: Path, fresh_world: Callable[..., Path]
) -> None:
    path = fresh_world(tmp_path / "s.db", seed.MIN_SIMS)
    rules = FaultSpec.parse("daily_quota=1").rules()
    with SandboxState(path, rules=rules) as state:
        assert state.take_quota(seed.PARTNER) is None
        assert state.take_quota(seed.PARTNER) is not None
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "h"), "sandbox", "new-day", "--state", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "new day" in result.stderr
    with SandboxState(path, rules=rules) as state:
        assert state.quota_used() == 0 and state.take_quota(seed.PARTNER) is None


def test_new_day_without_a_state_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "h"), "sandbox", "new-day", "--state", str(missing)]
    )
    assert result.exit_code == 1
    assert "no sandbox state" in result.output and "Traceback" not in result.output
    assert not missing.exists()


def test_serve_takes_a_daily_quota(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from jobs.sandbox import sandbox; sandbox()", "serve"]
    options = ["--port", "0", "--state", str(tmp_path / "s.db"), "--sims", "100"]
    process = subprocess.Popen(
        [*command, *options, "--faults", "daily_quota=9", "--daily-quota", "1"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        line = ""
        while "listening on" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        assert "daily_quota=1" in line, line
        url = re.search(r"listening on (http://\S+)", line)
        assert url, line
        request = wire.build_request(wire.CONTRACT_V1, wire.CONTRACT_V1.groups, seed.PARTNER)
        answers = [
            http_get(url[1] + request.path, params=request.query, timeout=10).status_code
            for _ in range(2)
        ]
        assert answers == [200, 429]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_embedded_sandbox_takes_its_daily_quota_from_the_sandbox_faults_setting(
    tmp_path: Path, fresh_world: Callable[..., Path]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    fresh_world(home / "sandbox.db", 2_000)
    env = {"LF_BULK_SANDBOX_FAULTS": "daily_quota=1"}
    runner = CliRunner()
    args = ["--home", str(home), "groups", "list", "--format", "json"]

    first = runner.invoke(cli, args, env=env)
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, args, env=env)
    assert second.exit_code == 5 and "Traceback" not in second.output  # not finished
    assert "quota" in second.output.lower()
    reset = runner.invoke(cli, ["--home", str(home), "sandbox", "new-day"])
    assert reset.exit_code == 0, reset.output
    # The sandbox's day starts again (the tool's own ledger remembers the server's word until
    # midnight: that is the quota ledger's rule, not the simulator's).
    with SandboxState(home / "sandbox.db", rules=FaultSpec.parse("daily_quota=1").rules()) as state:
        assert state.quota_used() == 0
        assert state.take_quota(seed.PARTNER) is None


def test_the_gate_is_built_once_whatever_the_first_requests_race() -> None:
    from lf_bulk.sandbox.app import ApiGate, create_app

    app = create_app(None)  # type: ignore[arg-type]
    gate = app.middleware_stack
    while gate is not None and not isinstance(gate, ApiGate):
        gate = getattr(gate, "app", None)
    assert isinstance(gate, ApiGate)  # one gate (one count of answers), before any request
