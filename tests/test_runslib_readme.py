"""The README's "From Python" example runs as written, in a copy of samples/, against the embedded
sandbox (only its pace is faster, as in test_readme.py)."""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import re
import shutil
from pathlib import Path

import pytest

from lf_bulk import runs

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## From Python"
FAST = 'Settings(env="sandbox", sandbox_faults="async=50-150ms,rate=400,concurrency=8", rate_per_second=200, max_in_flight=4)'


def python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's From Python section has a python block"
    return found.group(1)


def test_the_readme_python_example_names_only_what_the_library_has() -> None:
    code = python_example()
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"
                ), f"{node.module}.{alias.name}"
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "runs"
        ):
            assert hasattr(runs, node.attr), f"runs.{node.attr}"


@pytest.mark.slow
def test_the_readme_python_example_adds_and_reconciles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = python_example()
    assert len(code.strip().splitlines()) <= 16
    assert code.count('Settings(env="sandbox")') == 1
    folder = tmp_path / "samples"
    shutil.copytree(ROOT / "samples", folder, ignore=shutil.ignore_patterns("*.py"))
    monkeypatch.chdir(folder)
    for name in ("LF_BULK_ENV", "LF_BULK_BASE_URL", "LF_BULK_PARTNER_CODE", "LF_BULK_HOME"):
        monkeypatch.delenv(name, raising=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.replace('Settings(env="sandbox")', FAST), "README.md", "exec"), {})
    added, drift = printed.getvalue().splitlines()
    assert added.startswith("0 {'added': ") and "lf-bulk-reports" in added
    assert drift.startswith("4 ")
    assert (folder / ".lf-bulk" / "journal.db").is_file()
    assert len(list((folder / "lf-bulk-reports").iterdir())) == 2
