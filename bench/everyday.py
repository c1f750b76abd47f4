"""What the everyday features cost on a project of a given size (prints figures, asserts nothing).

    .venv/bin/python bench/everyday.py                   # 100k labels
    .venv/bin/python bench/everyday.py --sizes 100000 300000

The project is the one of `bench/report_scale.py` (30 annotators, 3 per item, 14 days, 5% hidden gold
checks), built into a temporary SQLite file. Measured, each the median of `--repeat` runs:

- the report's progress section (SQL: item statuses, answers today and this week, the pace) and the
  window's counts in the one vocabulary plus the daily anchoring series (pandas, on the frame the
  report already loaded), next to the whole `build_report` of the 7-day daily window;
- a reminder pass over the 28 qualified annotators with 20,000 fresh items waiting (who labeled
  today, what waits for each: the count stops at 1,000, so it does not grow with the queue), without
  sending (a DM is two Web API calls per person on top);
- the Home tab's numbers for one annotator (today, the week, the team's week, the streak: one
  indexed probe per day of the streak, 14 here);
- the users.info lookups of a report's people, cold and then from the cache (a stub client).

The alerts job costs one `build_report` of the daily window per project every 15 minutes (the
statistics' alerts) plus one indexed query a minute (suspensions): see the build_report figure.
The machine's load average is printed: on a shared box, read the CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report_scale import SLUG, UNTIL, build  # noqa: E402


def _timed(fn, repeat: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


class _StubClient:
    """users.info without a network: what the NameBook sees from Slack."""

    def __init__(self) -> None:
        self.calls = 0

    def users_info(self, user: str) -> dict:
        self.calls += 1
        return {"user": {"id": user, "name": user.lower(), "profile": {"display_name": f"Person {user}"}}}


def measure(path: str, repeat: int) -> dict[str, object]:
    from sqlalchemy import select, update

    from bot.services.labeling.stats import member_stats
    from bot.services.people import NameBook
    from bot.services.projects import get_project, spec_of
    from bot.services.reminders import due_passes
    from bot.services.reports import build_report
    from bot.services.reports.names import people_of
    from bot.services.reports.progress import activity_section, add_daily_series, progress_section
    from bot.services.reports.sections import local_days_between
    from storage.db import Database
    from storage.frames import labels_frame
    from storage.models import Project

    db = Database(f"sqlite:///{path}")
    now = UNTIL
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == SLUG))
        data = dict(project.spec)
        data["reminders"] = {"time": "09:00", "timezone": "Europe/Paris"}
        s.execute(update(Project).where(Project.id == project.id).values(spec=data))
    out: dict[str, object] = {}

    def progress() -> object:
        with db.read() as s:
            p = get_project(s, SLUG)
            return progress_section(s, p, spec_of(p), now)

    out["progress_section_s"], out["progress_section_cpu_s"], _ = _timed(progress, repeat)

    since = now - timedelta(days=7)
    with db.read() as s:
        window = labels_frame(s, get_project(s, SLUG).id, since, now)
    out["window_labels"] = len(window)
    days = local_days_between(since, now, "Europe/Paris")

    def counts() -> object:
        daily = [{"day": d} for d in days]
        add_daily_series(daily, window, "Europe/Paris")
        return activity_section(window, days, "Europe/Paris")

    out["counts_and_daily_anchoring_s"], out["counts_cpu_s"], _ = _timed(counts, repeat)
    out["build_report_7d_s"], out["build_report_7d_cpu_s"], report = _timed(
        lambda: build_report(db, SLUG, since=since, until=now, now=now), max(1, repeat // 2))

    # a reminder pass at 09:00 Paris the day after the last label, with 20,000 fresh items waiting:
    # everyone qualified is due, and each count stops at 1,000
    from storage.models import Item

    with db.session() as s:
        pid = get_project(s, SLUG).id
        s.execute(Item.__table__.insert(), [
            {"project_id": pid, "external_id": f"fresh-{n}", "text": "fresh", "status": "open", "slots": 3,
             "labels_done": 0, "is_gold": False, "created_at": now, "updated_at": now} for n in range(20_000)])
    passes = []
    out["reminder_pass_s"], out["reminder_pass_cpu_s"], passes = _timed(
        lambda: due_passes(db, UNTIL.replace(hour=8, minute=0) + timedelta(days=1)), repeat)
    out["reminder_people"] = sum(len(p.people) for p in passes)  # type: ignore[union-attr]

    with db.read() as s:
        team = get_project(s, SLUG).team_id
    def home() -> object:
        with db.read() as s:
            return member_stats(s, team, "U0001", now)

    out["home_tab_s"], out["home_tab_cpu_s"], stats = _timed(home, repeat)
    out["home_streak_days"] = stats[0].streak  # type: ignore[index]

    client, book = _StubClient(), NameBook()
    people = people_of(report)  # type: ignore[arg-type]
    cold = time.perf_counter()
    book.names(client, team, people)
    out["names_cold_s"] = round(time.perf_counter() - cold, 4)
    warm = time.perf_counter()
    book.names(client, team, people)
    out["names_cached_s"] = round(time.perf_counter() - warm, 6)
    out["names_lookups"] = client.calls
    db.dispose()
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine: read the CPU seconds)")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bench.db")
            built = build(path, n)
            figures = measure(path, args.repeat)
            print(f"\n{built['labels']:,} labels ({built['items']:,} items), built in {built['build_seconds']} s")
            for key, value in figures.items():
                print(f"  {key:32} {value}")


if __name__ == "__main__":
    main()
