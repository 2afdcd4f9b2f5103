"""tqdm bars on stderr; silent when quiet, with --no-progress, or when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from jobs.context import AppContext


def progress_bar(app: AppContext, **kwargs: Any) -> tqdm:
    return tqdm(file=sys.stderr, disable=not app.progress_enabled, dynamic_ncols=True, **kwargs)
