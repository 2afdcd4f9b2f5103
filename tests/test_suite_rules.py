"""Rules the test suite keeps so that it stays fast, isolated and mergeable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TEST_MODULES = sorted(TESTS.glob("test_*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", TEST_MODULES, ids=lambda p: p.name)
def test_no_test_module_imports_another(path: Path) -> None:
    # Shared helpers live in conftest.py, clihelp.py or badinput_corpus.py; importing a test
    # module runs (and, under pytest, may collect) its tests a second time.
    others = {p.stem for p in TEST_MODULES} - {path.stem}
    assert not imported_modules(path) & others, f"{path.name} imports a test module"
