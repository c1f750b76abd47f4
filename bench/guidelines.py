"""What the guideline revision loop costs as a project grows: the evidence behind a suggestion (and the
template built from it), and the report's `agreement_by_guidelines` section.

    .venv/bin/python bench/guidelines.py                       # 30k, 100k and 300k labels
    .venv/bin/python bench/guidelines.py --sizes 100000        # one size

Each size is built by `bench/report_scale.py`'s builder (a SQLite file: 3 of 30 annotators per item,
labels over 14 days), then the second half of the labels (by time) is moved to guideline version 2,
published at the midpoint. Timed in this process, best of `--repeat` runs: `evidence.gather` (what
a suggestion reads), `suggest` without an LLM (evidence, template, storing the suggestion), and the
report section (both versions' agreement with 1000-resample bootstrap CIs, the change between them and
the pair-level changes with 1000 resamples each). The evidence reads at most the newest 50,000 answers
per version, the report section the newest 15,000, so both costs level off beyond that. Wall and CPU
seconds are printed with the load average: on a shared machine read the CPU figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def second_version(path: str) -> int:
    """Publish version 2 at the midpoint of the labels and move the later half to it."""
    from report_scale import SLUG
    from sqlalchemy import func, select, update

    from bot.services.projects import get_project
    from storage.db import Database
    from storage.models import GuidelineVersion, Label

    db = Database(f"sqlite:///{path}")
    with db.session() as s:
        project = get_project(s, SLUG)
        first, last = s.execute(select(func.min(Label.created_at), func.max(Label.created_at))
                                .where(Label.project_id == project.id)).one()
        middle = first + (last - first) / 2
        s.add(GuidelineVersion(project_id=project.id, version=2, text="Revised.", summary=["Revised."],
                               author="ULEAD", source="cli", created_at=middle))
        moved = s.execute(update(Label).where(Label.project_id == project.id, Label.created_at >= middle)
                          .values(guideline_version=2)).rowcount
        s.execute(update(Label).where(Label.project_id == project.id, Label.created_at < middle)
                  .values(guideline_version=1))
        project.guideline_version = 2
        project.spec = {**project.spec, "instructions": "Revised."}
    db.dispose()
    return int(moved)


def timed(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return round(best_wall, 3), round(best_cpu, 3)


def measure(path: str, repeat: int) -> dict[str, object]:
    from report_scale import SLUG, UNTIL

    from bot.services import guidelines
    from bot.services.guidelines.evidence import gather
    from bot.services.projects import get_project, spec_of
    from bot.services.reports.guidelines import agreement_by_guidelines
    from storage.db import Database

    db = Database(f"sqlite:///{path}")

    def evidence() -> None:
        with db.read() as s:
            project = get_project(s, SLUG)
            gather(s, project, spec_of(project), current=project.guideline_version)

    def section() -> list:  # type: ignore[type-arg]
        with db.read() as s:
            project = get_project(s, SLUG)
            return agreement_by_guidelines(s, project, spec_of(project))

    def suggest() -> None:
        guidelines.suggest(db, SLUG, requested_by="bench", now=UNTIL + timedelta(hours=1), writer=None)

    out: dict[str, object] = {}
    out["evidence"] = timed(evidence, repeat)
    out["suggest_template"] = timed(suggest, repeat)
    out["report_section"] = timed(section, repeat)
    entries = section()
    out["versions"] = [(e["version"], e["labels"], e["items"], round(e["krippendorff_alpha"] or 0, 3))
                       for e in entries]
    db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30_000, 100_000, 300_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from report_scale import build

    print(f"load average before: {os.getloadavg()[0]:.1f} (2 CPUs, shared)")
    print(f"{'labels':>8} {'moved to v2':>11} {'evidence s (cpu)':>18} {'suggest s (cpu)':>17} "
          f"{'report section s (cpu)':>24}  versions (version, answers read, items, alpha)")
    with tempfile.TemporaryDirectory(prefix="labelbot-bench-guidelines-") as tmp:
        for size in args.sizes:
            path = str(Path(tmp) / f"g{size}.db")
            built = build(path, size)
            moved = second_version(path)
            m = measure(path, args.repeat)
            ev, sg, rs = m["evidence"], m["suggest_template"], m["report_section"]
            print(f"{built['labels']:>8,} {moved:>11,} {ev[0]:>9} ({ev[1]:>5}) {sg[0]:>8} ({sg[1]:>5}) "  # type: ignore[index]
                  f"{rs[0]:>13} ({rs[1]:>5})  {m['versions']}", flush=True)  # type: ignore[index]
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
