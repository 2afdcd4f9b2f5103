"""Heavy libraries imported on first use, so that a command which reads or writes no table starts
in a blink (`lf-bulk --help`, `runs list`: no pandas, numpy, spreadsheet or server library).

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas")

The module is imported the first time one of its attributes is read, then served from
`sys.modules`; type checkers see the real module.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for a module until an attribute is read; then delegates to the imported module."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    return LazyModule(name)
