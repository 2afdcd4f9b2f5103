"""Which files the reader opens at all: only regular files and stdin, and never more than a cap."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lf_bulk import sources
from lf_bulk.errors import InputError
from lf_bulk.sources import read_iccids

from badinput_corpus import VALID, write_text


def within(seconds: float, read: Callable[[], object]) -> BaseException | object:
    """The result (or exception) of `read`, failing the test instead of hanging when it blocks."""
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(read())
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"the reader blocked for more than {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "list.csv"
    os.mkfifo(fifo)
    error = within(5, lambda: read_iccids(fifo))
    assert isinstance(error, InputError)
    assert "named pipe" in str(error) and str(fifo) in str(error)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_link_to_a_device_is_refused(device: str, tmp_path: Path) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    link = tmp_path / "list.xlsx"
    link.symlink_to(device)
    error = within(5, lambda: read_iccids(link, max_bytes=1_000_000))
    assert isinstance(error, InputError)
    assert "device" in str(error) and "not a regular file" in str(error)


def test_a_link_to_a_regular_file_is_read(tmp_path: Path) -> None:
    target = write_text(tmp_path / "real.csv", f"iccid\n{VALID}\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert [row.iccid for row in read_iccids(link).rows] == [VALID]


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = write_text(tmp_path / "big.csv", "iccid\n" + f"{VALID}\n" * 100)
    with pytest.raises(InputError, match=r"larger than .*split it") as raised:
        read_iccids(path, max_bytes=1000)
    assert raised.value.path == str(path)


def test_a_file_at_the_cap_is_read(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"iccid\n{VALID}\n")
    size = path.stat().st_size
    assert len(read_iccids(path, max_bytes=size).rows) == 1


def test_stdin_over_the_cap_is_refused() -> None:
    data = ("iccid\n" + f"{VALID}\n" * 100).encode()
    with pytest.raises(InputError, match=r"<stdin>: .*larger than"):
        read_iccids("-", stdin=io.BytesIO(data), max_bytes=1000)


def test_the_default_cap_is_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MAX_INPUT_BYTES", 100)
    path = write_text(tmp_path / "big.csv", "iccid\n" + f"{VALID}\n" * 10)
    with pytest.raises(InputError, match="larger than"):
        read_iccids(path)


def test_the_cap_through_the_cli_for_a_file_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clihelp import expect, invoke

    monkeypatch.setattr(sources, "MAX_INPUT_BYTES", 100)
    path = write_text(tmp_path / "big.csv", "iccid\n" + f"{VALID}\n" * 10)
    home = ["--home", str(tmp_path / "home"), "--no-progress"]
    for file, stdin in ((str(path), None), ("-", path.read_text())):
        result = expect(invoke([*home, "sims", "add", "G1001", file, "--dry-run"], input=stdin), 2)
        assert "larger than 100 bytes" in result.stderr
