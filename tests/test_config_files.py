"""Config files: layering, trust, unknown keys, destructive switches, sandbox isolation."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lf_bulk.errors import ConfigError
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import KnownSetting, load_config

from clihelp import expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No LF_BULK_* variable, an empty HOME and a fresh current folder for every test."""
    for name in list(os.environ):
        if name.startswith("LF_BULK_"):
            monkeypatch.delenv(name)
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def silent_port() -> Iterator[socket.socket]:
    """A listening socket that never accepts: any connection attempt waits in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def was_contacted(sock: socket.socket) -> bool:
    time.sleep(0.05)
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def folder_config(text: str, mode: int = 0o600) -> Path:
    path = Path("lf-bulk.toml").resolve()
    path.write_text(text)
    path.chmod(mode)
    return path


def user_config(text: str) -> Path:
    path = Path(os.environ["HOME"]) / ".config" / "lf-bulk" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------- issue 9.2: sandbox isolation


def test_sandbox_env_refuses_a_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, silent_port: socket.socket, tmp_path: Path
) -> None:
    monkeypatch.setenv("LF_BULK_BASE_URL", url_of(silent_port))
    monkeypatch.setenv("LF_BULK_PARTNER_CODE", "PREAL01")
    result = expect(invoke(["--home", str(tmp_path / "h"), "groups", "list"]), 1)
    assert "no real SIM" not in result.stderr
    assert "LF_BULK_BASE_URL" in result.stderr and "--env sandbox" in result.stderr
    assert "--env uat --base-url" in result.stderr  # what to do instead
    assert "PREAL01" not in result.output
    assert not was_contacted(silent_port)


def test_sandbox_env_refuses_a_base_url_from_a_config_file_naming_it(
    silent_port: socket.socket, tmp_path: Path
) -> None:
    config = folder_config(f'base_url = "{url_of(silent_port)}"\npartner_code = "PREAL01"\n')
    result = expect(invoke(["--home", str(tmp_path / "h"), "groups", "list"]), 1)
    assert str(config) in result.stderr and "base_url" in result.stderr
    assert "no real SIM" not in result.stderr
    assert not was_contacted(silent_port)


def test_the_embedded_sandbox_ignores_a_configured_partner_code_and_proxies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LF_BULK_PARTNER_CODE", "PREAL01")
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    result = expect(invoke(["--home", str(tmp_path / "h"), "--no-progress", "groups", "list"]), 0)
    assert "no real SIM" in result.stderr


# ---------------------------------------------------------------- issue 9.12: unknown keys


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ('envv = "prod"\n', "envv", "env"),
        ('partner_cod = "P1"\n', "partner_cod", "partner_code"),
        ("[nonexistent]\nx = 1\n", "nonexistent", None),
        ("[reconcile]\nmax_change = 5\n", "reconcile.max_change", "max_changes"),
        ("[sims.add]\nbatch_sise = 5\n", "sims.add.batch_sise", "batch_size"),
    ],
)
def test_unknown_config_keys_are_an_error_naming_file_key_and_closest(
    tmp_path: Path, text: str, key: str, suggestion: str | None
) -> None:
    config = tmp_path / "lf.toml"
    config.write_text(text)
    result = expect(invoke(["--config", str(config), "groups", "list"]), 1)
    assert str(config) in result.stderr and repr(key) in result.stderr, result.stderr
    if suggestion:
        assert f"did you mean {suggestion!r}" in result.stderr
    assert "no real SIM" not in result.stderr


def test_a_bad_config_value_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "lf.toml"
    config.write_text('rate = "fast"\n')
    result = expect(invoke(["--config", str(config), "groups", "list"]), 2)
    assert str(config) in result.stderr and "'rate'" in result.stderr
    assert "Invalid value for '--rate'" not in result.stderr


def test_a_bad_env_value_in_a_config_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "lf.toml"
    config.write_text('env = "produciton"\n')
    result = expect(invoke(["--config", str(config), "groups", "list"]), 2)
    assert str(config) in result.stderr and "'env'" in result.stderr


# ---------------------------------------------------------------- issue 10.1: trust, layering


def test_folder_and_user_configs_layer_and_are_named_on_stderr(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    user = user_config('env = "uat"\npartner_code = "P000270"\nbase_url = "http://127.0.0.1:9"\n')
    folder = folder_config(f'base_url = "{sandbox.base_url}"\n')
    result = expect(invoke(["--home", str(tmp_path / "h"), "groups", "list"]), 0)
    assert "G" in result.stdout  # the folder's URL won over the user's unreachable one
    named = next(line for line in result.stderr.splitlines() if line.startswith("config:"))
    assert named.index(str(user)) < named.index(str(folder))


def test_doctor_names_the_config_files(sandbox: SandboxServer, tmp_path: Path) -> None:
    folder = folder_config(
        f'env = "uat"\npartner_code = "P000270"\nbase_url = "{sandbox.base_url}"\n'
    )
    result = expect(invoke(["--home", str(tmp_path / "h"), "doctor"]), 0)
    assert str(folder) in result.stdout


def test_explicit_config_replaces_both_user_and_folder_configs(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    user_config("typo_in_user = 1\n")
    folder_config("typo_in_folder = 1\n")
    chosen = tmp_path / "chosen.toml"
    chosen.write_text(f'env = "uat"\npartner_code = "P000270"\nbase_url = "{sandbox.base_url}"\n')
    result = expect(invoke(["--config", str(chosen), "--home", str(tmp_path / "h"), "doctor"]), 0)
    assert "typo" not in result.output


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_folder_config_writable_by_others_is_refused(
    sandbox: SandboxServer, mode: int, tmp_path: Path
) -> None:
    folder = folder_config(
        f'env = "uat"\npartner_code = "P000270"\nbase_url = "{sandbox.base_url}"\n', mode
    )
    result = expect(invoke(["--home", str(tmp_path / "h"), "groups", "list"]), 1)
    assert str(folder) in result.stderr and "writable" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_a_folder_config_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    folder = folder_config('env = "uat"\n')
    os.chown(folder, 4242, 4242)
    result = expect(invoke(["--home", str(tmp_path / "h"), "groups", "list"]), 1)
    assert str(folder) in result.stderr and "owned" in result.stderr


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[reconcile]\napply = true\n", "reconcile.apply"),
        ("yes = true\n", "yes"),
        ("[sims.remove]\nyes = true\n", "sims.remove.yes"),
        ("[reconcile]\nmax_changes = 2000\n", "reconcile.max_changes"),
        ("[reconcile]\nmax_removal_ratio = 0.5\n", "reconcile.max_removal_ratio"),
        ("allow_insecure_http = true\n", "allow_insecure_http"),
    ],
)
def test_destructive_switches_cannot_come_from_a_config_file(
    tmp_path: Path, text: str, key: str
) -> None:
    folder_config(text)
    result = expect(invoke(["--home", str(tmp_path / "h"), "groups", "list"]), 1)
    assert repr(key) in result.stderr and "command line" in result.stderr, result.stderr


def test_lowering_a_limit_in_a_config_file_is_fine(tmp_path: Path) -> None:
    config = tmp_path / "lf.toml"
    config.write_text("[reconcile]\nmax_changes = 20\n")
    schema = {"reconcile": {"max_changes": KnownSetting(default=500)}}
    loaded = load_config(config, schema)
    assert loaded.values == {"reconcile": {"max_changes": 20}}
    config.write_text("[reconcile]\nmax_changes = 501\n")
    with pytest.raises(ConfigError, match="command line"):
        load_config(config, schema)


# ---------------------------------------------------------------- issue 10.6: unreadable configs


def test_a_config_that_is_not_utf8_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "lf.toml"
    config.write_bytes(b'env = "\xff\xfe"\n')
    result = expect(invoke(["--config", str(config), "groups", "list"]), 1)
    assert str(config) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_unreadable_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "loop.toml"
    config.symlink_to(config)
    result = expect(invoke(["--config", str(config), "groups", "list"]), 1)
    assert str(config) in result.stderr and "cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_unreadable_folder_config_is_not_skipped_silently(tmp_path: Path) -> None:
    Path("lf-bulk.toml").symlink_to("lf-bulk.toml")
    result = expect(invoke(["--home", str(tmp_path / "h"), "groups", "list"]), 1)
    assert "lf-bulk.toml" in result.stderr and "cannot read" in result.stderr
