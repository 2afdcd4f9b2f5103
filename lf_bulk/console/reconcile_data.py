"""Reconcile for the console, as data: the drift of a desired-state file, and the apply job.

compare          `runs.reconcile` without apply: drift per category and per group, the
                 changes the apply would make and the mass-removal guard's numbers
apply_options    the apply's limits from what the user typed: `max_changes`, and the typed
                 number of removals as the consent the guard needs (never a default)
apply_job        the job the Apply button launches: `runs.reconcile` with apply, the same
                 checks, locks and limits as `lf-bulk reconcile --apply`
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lf_bulk import reconcile as rc
from lf_bulk import runs
from lf_bulk.client import LinksfieldClient
from lf_bulk.console.jobplans import lazy_journal
from lf_bulk.errors import InputError, PlanRefused
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal
from lf_bulk.settings import Settings
from lf_bulk.sources import InputTable

SHOWN_FINDINGS: Final = 1000
NO_GROUP: Final = "(none)"


@dataclass(frozen=True)
class GroupDrift:
    group_id: str
    members: int
    counts: dict[str, int]
    """Category -> findings whose desired (else actual) group is this one."""
    removals: int

    @property
    def drift(self) -> int:
        return sum(self.counts.get(str(c), 0) for c in rc.DRIFT)


@dataclass(frozen=True)
class DriftView:
    run_id: str
    report_dir: Path
    exit_code: ExitCode
    scope: list[str]
    counts: dict[str, int]
    groups: list[GroupDrift]
    findings: Sequence[rc.Finding]
    """The findings that are not in sync (at most `SHOWN_FINDINGS`)."""
    changes: int
    """API changes the apply would make (a move counts 2)."""
    removals: int
    withheld: int
    over_ratio: list[rc.GroupRemovals]
    """Groups where the removals exceed the default --max-removal-ratio: consent needed."""
    max_removal_ratio: float = rc.DEFAULT_MAX_REMOVAL_RATIO

    @property
    def drift(self) -> int:
        return sum(self.counts.get(str(c), 0) for c in rc.DRIFT)

    @property
    def consent(self) -> int | None:
        """The number of removals the user must type to apply; None when the guard holds."""
        return self.removals if self.over_ratio else None


def compare(
    client: runs.Lazy[LinksfieldClient],
    settings: Settings,
    table: InputTable,
    *,
    group_id: str | None = None,
    all_groups: bool = False,
    sheet_named: bool = False,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
    say: runs.Say = runs._silent,
) -> DriftView:
    """`lf-bulk reconcile FILE` (no apply) as data; its report is written as the CLI's is."""
    result = runs.reconcile(
        client, settings, table, rc.ReconcileOptions(apply=False, all_groups=all_groups),
        group_id=group_id, sheet_named=sheet_named, skip_invalid=skip_invalid,
        report_dir=report_dir, say=say,
    )  # fmt: skip
    before = result.before
    items = rc.plan_items(before.changes, withhold_removals=before.withholds_removals)
    removals = rc.removals_by_group(items, result.members)
    removal_of = {r.group_id: r.removals for r in removals}
    per_group: dict[str, dict[str, int]] = {g: {} for g in before.scope}
    not_in_sync: list[rc.Finding] = []
    for finding in before.findings:
        group = finding.desired_group or finding.actual_group or NO_GROUP
        counts = per_group.setdefault(group, {})
        counts[str(finding.category)] = counts.get(str(finding.category), 0) + 1
        if finding.category is not rc.IN_SYNC and len(not_in_sync) < SHOWN_FINDINGS:
            not_in_sync.append(finding)
    groups = [
        GroupDrift(g, result.members.get(g, 0), counts, removal_of.get(g, 0))
        for g, counts in sorted(per_group.items())
    ]
    return DriftView(
        result.run_id, result.report_dir, result.exit_code, before.scope, dict(before.counts),
        groups, not_in_sync, before.change_count() if items else 0,
        sum(r.removals for r in removals), result.withheld,
        rc.over_ratio(removals, rc.DEFAULT_MAX_REMOVAL_RATIO),
    )  # fmt: skip


def apply_options(
    view: DriftView, max_changes: str, consent: str, *, all_groups: bool = False
) -> rc.ReconcileOptions:
    """The apply's options from what the user typed (InputError / PlanRefused otherwise).

    `max_changes` must be typed (a whole number); when the compare tripped the mass-removal
    guard, `consent` must be the number of removals shown, which allows exactly the ratio those
    removals need. The apply compares again and refuses a plan beyond what was consented.
    """
    try:
        limit = int(max_changes.strip().replace(",", ""))
    except ValueError:
        raise InputError(
            f"type the most changes you allow (the plan has {view.changes:,}); nothing was sent"
        ) from None
    if limit < 0:
        raise InputError("max changes cannot be negative; nothing was sent")
    ratio = rc.DEFAULT_MAX_REMOVAL_RATIO
    if view.consent is not None:
        if consent.strip().replace(",", "") != str(view.consent):
            raise PlanRefused(
                f"not confirmed: the plan removes more than {ratio:.0%} of a group's members; "
                f"type {view.consent} (the number of removals) to allow them. Nothing was sent"
            )
        ratio = max(float(r.ratio_to_allow) for r in view.over_ratio)
    return rc.ReconcileOptions(
        apply=True, all_groups=all_groups, max_changes=limit, max_removal_ratio=ratio
    )


def apply_job(
    journal: Callable[[], Journal],
    client: Callable[[], LinksfieldClient],
    settings: Settings,
    table: InputTable,
    options: rc.ReconcileOptions,
    *,
    group_id: str | None = None,
    sheet_named: bool = False,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
) -> Callable[[runs.ProgressFactory, runs.Say], runs.RunResult]:
    """The Apply button's job: `lf-bulk reconcile --apply` with the typed limits."""

    def run(progress: runs.ProgressFactory, say: runs.Say) -> runs.RunResult:
        with lazy_journal(journal) as open_once:
            result = runs.reconcile(
                client, settings, table, options, group_id=group_id, sheet_named=sheet_named,
                skip_invalid=skip_invalid, report_dir=report_dir, journal=open_once,
                progress=progress, say=say,
            )  # fmt: skip
        counts = dict(result.drive.counts) if result.drive is not None else {}
        stopped = str(result.drive.stopped) if result.drive is not None else ""
        return runs.RunResult(
            result.run_id, result.exit_code, counts, result.report_dir, stopped,
            driven=result.drive is not None,
        )  # fmt: skip

    return run
