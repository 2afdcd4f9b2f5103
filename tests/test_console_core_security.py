"""The console's gate: token -> cookie, 401 without, CSRF on every POST, size limit while the body
streams, security headers on every answer, the Host check (DNS rebinding)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from consolehelp import TEST_TOKEN, TestClient, anonymous_client, console_client, csrf_in, csrf_of

from lf_bulk.console.security import COOKIE_NAME, SECURITY_HEADERS

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

PAGES = ["/", "/runs", "/runs/R1", "/runs/R1/files/items.csv", "/runs/R1/events", "/jobs/new"]
ACTIONS = ["/runs/R1/resume", "/runs/R1/wait", "/runs/R1/retry", "/runs/R1/cancel"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with console_client(tmp_path_factory.mktemp("console")) as opened:
        yield opened


@pytest.fixture(scope="module")
def stranger(client: TestClient) -> TestClient:
    """A browser without the cookie, talking to the same console."""
    return TestClient(client.app, base_url=str(client.base_url), follow_redirects=False)


def assert_security_headers(answer: object) -> None:
    headers = answer.headers  # type: ignore[attr-defined]
    for name, value in SECURITY_HEADERS:
        assert headers.get(name.decode()) == value.decode(), name


@pytest.mark.parametrize("path", PAGES)
def test_every_page_without_the_token_is_refused_with_no_account_data(
    stranger: TestClient, path: str
) -> None:
    answer = stranger.get(path)
    assert answer.status_code == 401
    assert "access token" in answer.text.lower()
    assert "G1000001" not in answer.text and "quota" not in answer.text.lower()
    assert_security_headers(answer)


@pytest.mark.parametrize("path", ACTIONS)
def test_every_action_without_the_token_is_refused(stranger: TestClient, path: str) -> None:
    answer = stranger.post(path, data={"csrf_token": "anything"})
    assert answer.status_code == 401


def test_a_wrong_token_is_refused_and_sets_no_cookie(stranger: TestClient) -> None:
    answer = stranger.get("/?token=" + "y" * 43)
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    stranger.cookies.set(COOKIE_NAME, "y" * 43)
    try:
        assert stranger.get("/").status_code == 401
    finally:
        stranger.cookies.clear()


def test_the_token_sets_an_http_only_strict_cookie_and_leaves_the_url(tmp_path: Path) -> None:
    client = anonymous_client(tmp_path)
    answer = client.get(f"/runs?status=finished&token={TEST_TOKEN}")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/runs?status=finished"
    cookie = answer.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never return
    assert_security_headers(answer)
    page = client.get("/runs?status=finished")
    assert page.status_code == 200
    assert TEST_TOKEN not in page.text


def test_behind_tls_the_cookie_is_secure(tmp_path: Path) -> None:
    answer = anonymous_client(tmp_path, tls=True).get(f"/?token={TEST_TOKEN}")
    assert "Secure" in answer.headers["set-cookie"]


def test_the_token_redirect_never_leads_to_another_site(tmp_path: Path) -> None:
    answer = anonymous_client(tmp_path).get(f"//evil.example/?token={TEST_TOKEN}")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_static_files_need_no_token_and_carry_the_headers(stranger: TestClient) -> None:
    answer = stranger.get("/static/console.css")
    assert answer.status_code == 200
    assert_security_headers(answer)
    assert stranger.get("/static/../app.py").status_code in (401, 404)


def test_pages_carry_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/runs", "/runs/NO-SUCH-RUN"):
        assert_security_headers(client.get(path))


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(client: TestClient) -> None:
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}):
        answer = client.post("/runs/R1/cancel", data=data)
        assert answer.status_code == 403, data
        assert "nothing was done" in answer.text
    # A multipart form is checked the same way.
    upload = {"file": ("list.csv", b"iccid\n", "text/csv")}
    assert client.post("/runs/R1/cancel", files=upload).status_code == 403
    good = client.post("/runs/R1/cancel", files=upload, data={"csrf_token": csrf_of(client)})
    assert good.status_code == 404  # past the gate: the page says the run does not exist


def test_the_csrf_token_is_tied_to_the_cookie(client: TestClient, tmp_path: Path) -> None:
    other = console_client(tmp_path)
    assert csrf_of(other) != csrf_of(client)
    answer = client.post("/runs/R1/cancel", data={"csrf_token": csrf_of(other)})
    assert answer.status_code == 403


def test_a_post_that_is_not_a_form_is_refused(client: TestClient) -> None:
    answer = client.post("/runs/R1/cancel", json={"csrf_token": csrf_of(client)})
    assert answer.status_code == 403


def test_other_methods_are_refused(client: TestClient) -> None:
    assert client.put("/runs/R1/cancel", data={"csrf_token": csrf_of(client)}).status_code == 405


def test_a_body_over_the_limit_is_refused_by_its_length_before_it_is_read(
    tmp_path: Path,
) -> None:
    client = console_client(tmp_path, max_upload_bytes=1000)
    state = client.app.state.console  # type: ignore[attr-defined]
    too_big = b"x" * (1000 + 64 * 1024 + 1)
    answer = client.post(
        "/runs/R1/cancel",
        content=too_big,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert "larger than" in answer.text
    assert_security_headers(answer)
    assert state.runner.live("R1") is None


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(tmp_path: Path) -> None:
    client = console_client(tmp_path, max_upload_bytes=1000)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MB offered, no Content-Length
            sent.append(1)
            yield b"y" * 65536

    answer = client.post(
        "/runs/R1/cancel",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413


def test_a_foreign_host_name_is_refused_on_loopback(client: TestClient) -> None:
    answer = client.get("/", headers={"host": "rebound.evil.example:8770"})
    assert answer.status_code == 400
    assert "G1000001" not in answer.text
    assert client.get("/", headers={"host": "localhost:8770"}).status_code == 200


def test_a_remote_console_does_not_check_the_host_name(tmp_path: Path) -> None:
    client = console_client(tmp_path, host="0.0.0.0")
    assert client.get("/runs", headers={"host": "console.example.com"}).status_code == 200


def test_every_form_of_a_page_carries_the_csrf_token(client: TestClient) -> None:
    page = client.get("/runs").text
    assert 'method="post"' not in page or csrf_in(page) == csrf_of(client)


def test_a_websocket_is_refused(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/"):
        pass


def test_a_page_reads_the_whole_form_after_the_gate_checked_it() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from lf_bulk.console.security import SecurityMiddleware, csrf_token_for

    async def echo(request: Request) -> JSONResponse:
        async with request.form() as form:
            upload = form["file"]
            assert not isinstance(upload, str)
            content = await upload.read()
            return JSONResponse(
                {"note": form["note"], "size": len(content), "tail": content[-8:].decode()}
            )

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    secret = b"s" * 32
    gated = SecurityMiddleware(
        app, token=TEST_TOKEN, csrf_secret=secret, max_body_bytes=2_000_000, host="127.0.0.1"
    )
    client = TestClient(gated, base_url="http://127.0.0.1:8770")
    client.cookies.set(COOKIE_NAME, TEST_TOKEN)
    body = b"iccid\n" + b"8944000000000000000\n" * 30_000 + b"THE-END!"  # ~600 kB: many chunks
    answer = client.post(
        "/echo",
        data={"csrf_token": csrf_token_for(secret, TEST_TOKEN), "note": "<b>ok</b>"},
        files={"file": ("list.csv", body, "text/csv")},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"note": "<b>ok</b>", "size": len(body), "tail": "THE-END!"}
