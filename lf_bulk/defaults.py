"""Defaults the command line shows in its help before any of the library is loaded.

They are the library's own (`lf_bulk.settings` and `lf_bulk.quota` take them from here), kept in a
module that imports nothing, so that `lf-bulk --help` lists every global option with its default
without loading settings, the quota ledger, models or the wire profile (issue: start in a blink).
"""

from __future__ import annotations

from pathlib import Path

ENVIRONMENTS = ("sandbox", "uat", "prod")
DEFAULT_HOME = Path(".lf-bulk")

# The daily request quota (contract v2 assumes 5,000 a partner code) and the last requests of it
# kept for reconcile (see `lf_bulk.quota`).
DEFAULT_DAILY_QUOTA = 5_000
DEFAULT_QUOTA_RESERVE = 500

# Reconcile's safety limits (`--max-changes`, `--max-removal-ratio`), known to the command line
# and the config check without loading the reconcile machinery.
DEFAULT_MAX_CHANGES = 500
DEFAULT_MAX_REMOVAL_RATIO = 0.1
