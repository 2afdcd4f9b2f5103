"""Every endpoint replayed from vcrpy cassettes recorded against the sandbox.

Replay is the default (pytest-recording's record mode `none`): CI never talks to a server here. To
record again: `pytest tests/test_cassettes.py --record-mode=rewrite`, which starts a sandbox. The
partner code, the signature and the real host never reach a cassette.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lf_bulk.client import LinksfieldClient
from lf_bulk.errors import GroupNotFound
from lf_bulk.models import OpStatus
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox.seed import DEMO_GROUP, PARTNER, STAFF_GROUP, make_iccid

CASSETTES = Path(__file__).parent / "cassettes"
PLACEHOLDER_HOST = "http://sandbox.lf-bulk.test"
SECRET_FIELDS = ("partnerCode", "sign")


def _scrub(request: Any) -> Any:
    request.uri = re.sub(r"^https?://[^/]+", PLACEHOLDER_HOST, request.uri)
    if request.body:
        try:
            body = json.loads(request.body)
        except ValueError:
            return request
        for field in SECRET_FIELDS:
            body.pop(field, None)
        request.body = json.dumps(body, sort_keys=True).encode()
    return request


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "filter_query_parameters": list(SECRET_FIELDS),
        "filter_headers": ["host", "user-agent"],
        "before_record_request": _scrub,
        "match_on": ["method", "path", "query", "body"],
        "cassette_library_dir": str(CASSETTES),
    }


@pytest.fixture
def recording(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--record-mode") not in ("none", None)


@pytest.fixture
def client(recording: bool, tmp_path: Path) -> Iterator[LinksfieldClient]:
    if not recording:
        with LinksfieldClient(PLACEHOLDER_HOST, PARTNER, pacer=RequestPacer(1000, 1)) as replay:
            yield replay
        return
    from lf_bulk.sandbox.server import running_sandbox

    with (
        running_sandbox(tmp_path / "s.db", "async=300-500ms", sims=2_000) as server,
        LinksfieldClient(server.base_url, PARTNER) as live,
    ):
        yield live


# Fixed ICCIDs from the deterministic seed, so that recorded bodies match on replay.
FREE_SIMS = [make_iccid(n) for n in range(1_900, 1_905)]


@pytest.mark.vcr
def test_groups(client: LinksfieldClient) -> None:
    groups = {g.group_id: g for g in client.list_groups()}
    assert DEMO_GROUP in groups
    assert groups[DEMO_GROUP].bundles and groups[DEMO_GROUP].sim_count > 0


@pytest.mark.vcr
def test_members_follow_pages(client: LinksfieldClient) -> None:
    members = client.list_members(STAFF_GROUP, page_size=1)
    pages = list(client.iter_member_pages(STAFF_GROUP, page_size=1))
    assert len(pages) == pages[0].total == len(members)
    assert members == sorted(members)


@pytest.mark.vcr
def test_add_poll_remove(client: LinksfieldClient, recording: bool) -> None:
    submitted = client.add_sims(STAFF_GROUP, FREE_SIMS)
    assert submitted.accepted == len(FREE_SIMS)
    result = client.async_result(submitted.request_id)
    while not result.status.is_final:
        if recording:
            time.sleep(0.2)
        result = client.async_result(submitted.request_id)
    assert result.status is OpStatus.SUCCESS
    assert {r.iccid for r in result.results if r.succeeded} == set(FREE_SIMS)
    removed = client.remove_sims(STAFF_GROUP, FREE_SIMS)
    assert removed.request_id != submitted.request_id


@pytest.mark.vcr
def test_orders_by_each_key(client: LinksfieldClient) -> None:
    (first,) = client.find_orders("order_id", "LF100000001")
    assert first.amount is not None and first.currency in ("GBP", "EUR", "USD")
    assert first.extra.get("channel")
    by_sim = client.find_orders("sim_id", first.sim_id)
    assert first.order_id in {o.order_id for o in by_sim}
    by_po = client.find_orders("purchase_order_id", first.purchase_order_id)
    assert len(by_po) == 1 and by_po[0].purchase_order_id == first.purchase_order_id
    assert client.find_orders("order_id", "NO-SUCH-ORDER") == []


@pytest.mark.vcr
def test_unknown_group_is_a_typed_error(client: LinksfieldClient) -> None:
    with pytest.raises(GroupNotFound):
        client.member_page("G0000000", 1, 10)


def test_cassettes_exist_and_hold_no_secrets() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) >= 5
    for file in files:
        text = file.read_text()
        assert PARTNER not in text, file
        assert "partnerCode" not in text, file
        assert not re.search(r"sign=[0-9a-f]{32}|\"sign\": \"[0-9a-f]{32}\"", text), file
        assert "127.0.0.1" not in text, file
