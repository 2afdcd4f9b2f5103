"""Things made on first use: heavy libraries, so that a command which reads or writes no table
starts in a blink (`lf-bulk --help`, `runs list`: no pandas, numpy, spreadsheet or server library),
and the items of a large sequence kept in a compact form (`BuiltOnDemand`).

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas")

The module is imported the first time one of its attributes is read, then served from
`sys.modules`; type checkers see the real module.
"""

from __future__ import annotations

import importlib
import operator
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")


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


class BuiltOnDemand(Sequence[T]):
    """A sequence whose items are made when one is read (`_item`), indexed like a list of them."""

    __slots__ = ()
    item_name = "item"  # for the IndexError

    @abstractmethod
    def _item(self, position: int) -> T:
        """The item at `position`, 0 <= position < len(self)."""

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._item(position) for position in range(*index.indices(len(self)))]
        position = operator.index(index)
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"{self.item_name} index out of range")
        return self._item(position)
