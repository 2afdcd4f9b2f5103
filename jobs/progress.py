"""tqdm bars on stderr; silent when quiet, with --no-progress, or when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from jobs.context import AppContext

if TYPE_CHECKING:
    from tqdm import tqdm


def progress_bar(app: AppContext, **kwargs: Any) -> tqdm:
    from tqdm import tqdm  # loaded by the commands that show progress, not by every command

    return tqdm(file=sys.stderr, disable=not app.progress_enabled, dynamic_ncols=True, **kwargs)
