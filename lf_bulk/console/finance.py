"""Filled in by console-jobs (issue #15): see /work/prompts/console-spec.md."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
