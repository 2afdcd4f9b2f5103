"""Ids at the edge (usage error, exit 2, nothing sent) and in the wire layer (always encoded)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs import context
from lf_bulk import errors, wire
from lf_bulk.client import LinksfieldClient
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.server import SandboxServer

from clihelp import expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

VALID_ICCID = "89852420180910340793"
HOSTILE_IDS = [
    "G1/../G2",
    "G1?x=1",
    "G1#x",
    "G1%2F..",
    "",
    " G1",
    "G1 2",
    "G1\nx",
    "G1\\x",
    "../../etc",
    "..",
    ".",
    "\x1b[31mG1",
    "G" * 65,
    "G" * 70_000,
]


@pytest.fixture
def no_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open an API session fails the test: nothing may be sent."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the API must not be called")

    monkeypatch.setattr(context, "open_session", refuse)


@pytest.mark.parametrize("value", ["G1001", "G1000001", "g-42", "R_9.x:1", "A" * 64])
def test_group_ids_of_the_contract_are_accepted(value: str) -> None:
    assert wire.validate_group_id(value) == value


@pytest.mark.parametrize(
    "value", ["6f1c1f3e-8c1d-4c55-9f0e-1a2b3c4d5e6f", "0123456789abcdef0123456789abcdef"]
)
def test_uuid_and_hex_request_ids_are_accepted(value: str) -> None:
    assert wire.validate_request_id(value) == value


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=lambda value: repr(value)[:24])
def test_hostile_ids_are_refused_with_a_readable_reason(value: str) -> None:
    with pytest.raises(errors.InputError) as raised:
        wire.validate_group_id(value)
    message = str(raised.value)
    assert message.startswith("group id")
    assert "\x1b" not in message and "\n" not in message
    assert len(message) < 300


def test_the_reason_names_the_character_and_its_position() -> None:
    with pytest.raises(errors.InputError, match=r"'/' at position 3"):
        wire.validate_group_id("G1/../G2")
    with pytest.raises(errors.InputError, match=r"65 characters long; at most 64"):
        wire.validate_request_id("a" * 65)


def _files(tmp_path: Path) -> tuple[str, str]:
    sims = tmp_path / "sims.csv"
    sims.write_text(f"iccid\n{VALID_ICCID}\n")
    return str(sims), str(tmp_path / "out.xlsx")


def _commands(tmp_path: Path, bad: str) -> list[list[str]]:
    sims, out = _files(tmp_path)
    reports = str(tmp_path / "reports")
    return [
        ["groups", "members", bad],
        ["ops", "status", bad],
        ["orders", "export", "--group", bad, "-o", out],
        ["sims", "add", bad, sims, "--report-dir", reports],
        ["sims", "remove", bad, sims, "--report-dir", reports],
        ["reconcile", sims, "--group", bad, "--report-dir", reports],
    ]


@pytest.mark.parametrize("bad", ["G1/../G2", "G1?x=1", "G1#x", "G1%2F..", "", "G1\nx"], ids=repr)
def test_every_command_refuses_a_bad_id_as_a_usage_error(
    tmp_path: Path, no_api: None, bad: str
) -> None:
    for args in _commands(tmp_path, bad):
        result = expect(invoke(["--home", str(tmp_path / "home"), "--no-progress", *args]), 2)
        assert " id" in result.stderr, (args, result.stderr)
        assert not (tmp_path / "reports").exists()


def test_ops_status_refuses_a_path_that_climbs(tmp_path: Path, no_api: None) -> None:
    result = expect(invoke(["--home", str(tmp_path), "ops", "status", "../../etc"]), 2)
    assert "request id '../../etc'" in result.stderr


def test_an_escape_sequence_in_an_id_is_shown_escaped(tmp_path: Path, no_api: None) -> None:
    result = expect(invoke(["--home", str(tmp_path), "groups", "members", "\x1b[2JG1"]), 2)
    assert "\x1b" not in result.output and "\\x1b[2JG1" in result.stderr


# ---------------------------------------------------------------- the wire layer encodes anyway


def _recording_client(seen: list[httpx.Request]) -> LinksfieldClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": "1004", "message": "no such group"})

    return LinksfieldClient(
        "https://api.test/topup",
        "P000270",
        transport=httpx.MockTransport(handler),
        pacer=RequestPacer(1000, 3, sleep=lambda seconds: None),
        sleep=lambda seconds: None,
    )


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("G1/../G2", "G1%2F..%2FG2"),
        ("G1?x=1", "G1%3Fx%3D1"),
        ("G1#x", "G1%23x"),
        ("G1%2F..", "G1%252F.."),
        ("G1 2", "G1%202"),
        ("G1\nx", "G1%0Ax"),
        ("..", "%2E%2E"),
        (".", "%2E"),
    ],
    ids=repr,
)
def test_path_parameters_are_percent_encoded_whatever_the_caller_passes(
    value: str, segment: str
) -> None:
    request = wire.build_request(
        wire.CONTRACT_V1, wire.CONTRACT_V1.members, "P1", path_params={"group_id": value}
    )
    assert request.path == f"/mall/bundle-groups/{segment}/sims"


def test_a_climbing_request_id_stays_one_segment_on_the_wire() -> None:
    seen: list[httpx.Request] = []
    with _recording_client(seen) as client, pytest.raises(errors.GroupNotFound):
        client.async_result("../../etc")
    assert seen[0].url.raw_path.startswith(b"/topup/async-result/..%2F..%2Fetc?")
    with _recording_client(seen) as client, pytest.raises(errors.GroupNotFound):
        client.member_page("G1?x=1#y", 1, 10)
    raw = seen[1].url.raw_path.decode()
    assert raw.startswith("/topup/mall/bundle-groups/G1%3Fx%3D1%23y/sims?")
    assert "x" not in dict(seen[1].url.params)


@pytest.mark.parametrize("value", ["G1000001?x=1", "G1000001#x", "G1%2F..", "G1000001 x"], ids=repr)
def test_the_sandbox_sees_the_whole_id_and_says_group_not_found(
    sandbox: SandboxServer, value: str
) -> None:
    """Before encoding these gave 'signature mismatch' or reached another group's members."""
    with LinksfieldClient(sandbox.base_url, seed.PARTNER) as client:
        with pytest.raises(errors.GroupNotFound):
            client.member_page(value, 1, 10)
        with pytest.raises(errors.GroupNotFound):
            client.add_sims(value, sandbox.state.ungrouped_sims(1))
    assert all(m.request_id == "" for m in sandbox.state.mutation_log())


def test_a_key_too_long_for_a_url_is_an_input_error_not_a_traceback() -> None:
    seen: list[httpx.Request] = []
    with _recording_client(seen) as client, pytest.raises(errors.InputError, match="cannot send"):
        client.find_orders("order_id", "7" * 70_000)
    assert seen == []


def test_order_keys_are_bounded_at_the_edge(tmp_path: Path) -> None:
    from lf_bulk import orders

    path = tmp_path / "keys.csv"
    path.write_text("order_id\nO1\n" + "7" * 70_000 + "\n")
    keys = orders.read_keys(path)
    assert [r.reason for r in keys.rows] == [None, orders.TOO_LONG]
    assert keys.lookups == [orders.Lookup("order_id", "O1")]


def test_a_70000_character_order_key_is_one_clear_line(tmp_path: Path, no_api: None) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("order_id\n" + "7" * 70_000 + "\n")
    args = ["--home", str(tmp_path), "orders", "export", str(path), "-o", str(tmp_path / "o.xlsx")]
    result = expect(invoke(args), 2)
    assert "too_long" in result.stderr and len(result.stderr) < 1_000


@pytest.mark.parametrize("bad", ["G1/../G2", "G1?x=1", "G1\x1b[2J"], ids=repr)
def test_a_bad_group_in_a_reconcile_file_stops_before_anything_is_sent(
    tmp_path: Path, no_api: None, bad: str
) -> None:
    desired = tmp_path / "desired.csv"
    other = "8944500000396693786"
    desired.write_text(f"iccid,group_id\n{other},G1001\n{VALID_ICCID},{bad}\n", encoding="utf-8")
    args = ["--home", str(tmp_path), "--no-progress", "reconcile", str(desired)]
    result = expect(invoke([*args, "--report-dir", str(tmp_path / "r")]), 2)
    assert "bad_group" in result.stderr and "\x1b" not in result.output


@given(st.text(min_size=1))  # "" is refused: tests/test_review_wire.py
def test_any_path_parameter_is_one_segment_that_decodes_back(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return
    segment = wire.encode_path_param(value)
    assert not set(segment) & set("/?#\\ ") and segment not in (".", "..")
    assert unquote(segment) == value
