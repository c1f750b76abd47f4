"""The report's `agreement_by_guidelines` section: agreement per guideline version, and whether the last
revision helped.

Each version is measured over its whole life (not only the report's window: a revision is judged on
everything answered under it), on comparable items: counting production answers given under that
version, agreement only between people who read the same version (`bot.quality.revision`). The newest
`REPORT_ROWS` answers of a version are used (about 5,000 items at 3 answers each: the intervals are then
about ±0.02 wide), so the cost stays bounded on big projects; `sampled` says when a version has more.

Entry per version: {version, since, until, current, author, labels, items, krippendorff_alpha, ci,
percent, percent_ci, confused_pairs, change, sampled, reasons}; `change` compares it with the version
before (the headline measure, its difference with a bootstrap interval, a verdict and a sentence).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.enums import TaskType
from bot.quality import revision as rev
from bot.services.guidelines.evidence import answers_frame, version_bounds
from bot.services.guidelines.suggesting import suggestion_stats
from bot.spec import ProjectSpec
from storage.models import GuidelineVersion, Project

N_BOOT = 1000
TOP_PAIRS = 3
REPORT_ROWS = 15_000  # newest answers per version (bench/guidelines.py: the section's cost levels off)


def agreement_by_guidelines(session: Session, project: Project, spec: ProjectSpec, *,
                            n_boot: int = N_BOOT) -> list[dict[str, Any]]:
    """One entry per guideline version, oldest first (see the module's docstring)."""
    bounds = version_bounds(session, project.id)
    authors = dict(session.execute(
        select(GuidelineVersion.version, GuidelineVersion.author).where(GuidelineVersion.project_id == project.id)
    ).all())
    versions = sorted(bounds) or [1]
    categorical = spec.task is TaskType.CLASSIFICATION
    measure = "alpha" if categorical else "percent"
    out: list[dict[str, Any]] = []
    previous: pd.DataFrame | None = None
    for version in versions:
        frame = answers_frame(session, project.id, version, bounds, limit=REPORT_ROWS)
        since, until = bounds.get(version, (project.created_at, None))
        stats = rev.version_agreement(frame, top=TOP_PAIRS, n_boot=n_boot, seed=version)
        reasons: dict[str, str] = {}
        alpha = stats.alpha if categorical else None
        if alpha is None:
            reasons["krippendorff_alpha"] = f"n/a: defined for classification; this is a {spec.task.value} project"
        elif alpha.value is None:
            reasons["krippendorff_alpha"] = alpha.reason or "n/a"
        if stats.percent.value is None:
            reasons["percent"] = stats.percent.reason or "n/a"
        change = None
        if previous is not None:
            versions_pair = (version - 1, version)
            overall = rev.agreement_change(previous, frame, versions=versions_pair, measure=measure,
                                           n_boot=n_boot, seed=version)
            # Where the revision was aimed: the pairs most confused under the version it revised.
            before, after, _ = rev.same_people(previous, frame)
            top = rev.version_agreement(previous, top=TOP_PAIRS, n_boot=0).confused if categorical else []
            aimed = [rev.pair_change(before, after, c.first, c.second, versions=versions_pair, n_boot=n_boot,
                                     seed=version) for c, _pair in top]
            verdict, sentence = rev.plain_verdict(version, overall, aimed)
            change = {**overall.to_dict(), "overall_verdict": overall.verdict, "verdict": verdict,
                      "overall_sentence": overall.sentence, "sentence": sentence,
                      "pairs": [p.to_dict() for p in aimed]}
        out.append({
            "version": version,
            "since": since,
            "until": until,
            "current": version == project.guideline_version,
            "author": authors.get(version, "project spec"),
            "labels": len(frame),
            "items": stats.items,
            "krippendorff_alpha": alpha.value if alpha is not None else None,
            "ci": [alpha.ci_low, alpha.ci_high] if alpha is not None and alpha.ci_low is not None else None,
            "percent": stats.percent.value,
            "percent_ci": ([stats.percent.ci_low, stats.percent.ci_high]
                           if stats.percent.ci_low is not None else None),
            "confused_pairs": [
                {**c.to_dict(), "agreement": pair.value, "pairs": pair.pairs} for c, pair in stats.confused
            ],
            "change": change,
            "sampled": len(frame) >= REPORT_ROWS,
            "reasons": reasons,
        })
        previous = frame
    return out


def suggestions_section(session: Session, project: Project) -> dict[str, Any]:
    """How the guideline suggestions were written, with the LLM's failures (the template was used)."""
    return suggestion_stats(session, project.id)
