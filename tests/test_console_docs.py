"""The console's documentation: `make demo` points to it, the README walks through its pages."""

from __future__ import annotations

from pathlib import Path

from jobs import demo
from jobs.console import console

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_ends_by_pointing_to_the_console_on_its_own_home() -> None:
    lines = demo.console_hint(demo.DEMO_HOME)
    assert "lf-bulk --home .lf-bulk/demo console" in lines
    assert "open the URL it prints" in lines
    assert "Runs" in lines  # the demo's runs are there to see


def test_the_console_hint_names_a_home_outside_the_repository_in_full(tmp_path: Path) -> None:
    assert f"lf-bulk --home {tmp_path} console" in demo.console_hint(tmp_path)


def console_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n## The console\n" in readme, "the README has no section `## The console`"
    return readme.split("\n## The console\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_walks_through_every_page_of_the_console() -> None:
    section = console_section()
    for page in ("Home", "New job", "Validation", "Plan", "Run", "Runs", "Reconcile", "Finance"):
        assert f"- **{page}**" in section, f"the walk-through skips the {page} page"
    assert "![" not in section and "<img" not in section  # screenshot-free: the words carry it


def test_the_readme_names_every_console_flag() -> None:
    section = console_section()
    flags = [opt for param in console.params for opt in param.opts if opt.startswith("--")]
    assert "--allow-remote" in flags
    missing = [flag for flag in flags if flag != "--help" and f"`{flag}" not in section]
    assert missing == [], f"the README's console section does not explain {missing}"
