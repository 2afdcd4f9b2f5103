"""The console's documentation: `make demo` points to it, the README walks through its pages."""

from __future__ import annotations

from pathlib import Path

from jobs import demo


def test_the_demo_ends_by_pointing_to_the_console_on_its_own_home() -> None:
    lines = demo.console_hint(demo.DEMO_HOME)
    assert "lf-bulk --home .lf-bulk/demo console" in lines
    assert "open the URL it prints" in lines
    assert "Runs" in lines  # the demo's runs are there to see


def test_the_console_hint_names_a_home_outside_the_repository_in_full(tmp_path: Path) -> None:
    assert f"lf-bulk --home {tmp_path} console" in demo.console_hint(tmp_path)
