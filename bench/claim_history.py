"""Does leasing the next example cost more as one annotator's history grows?

    .venv/bin/python bench/claim_history.py [--items 20000] [--postgres URL]

One annotator labels alone (redundancy 3, so every item they answer stays open, ahead in serving
order); the time of `next_task` + `record_answer` is printed at several history sizes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import text

from bot.core.enums import MemberState
from bot.services.labeling import next_task, record_answer
from bot.services.projects import create_project, ensure_member, get_project
from bot.spec import parse_spec
from storage.db import Database

SPEC = {"slug": "hist", "name": "History", "task": "classification", "labels": ["a", "b"], "redundancy": 3,
        "gold_rate": 0, "blind_every": 0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--postgres", help="PostgreSQL URL of an empty database or schema")
    args = ap.parse_args()
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(args.postgres or f"sqlite:///{tmp}/hist.db")
        db.upgrade()
        with db.session() as s:
            project = create_project(s, parse_spec(SPEC), "T0", now)
            s.execute(text(
                "INSERT INTO items (project_id, external_id, text, status, slots, labels_done, is_gold, created_at,"
                " updated_at) SELECT :p, 'i' || n, 'text ' || n, 'open', 3, 0, false, :now, :now FROM "
                "(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < :k) SELECT n FROM r) q"
            ), {"p": project.id, "now": now.replace(tzinfo=None) if db.dialect == "sqlite" else now,
                "k": args.items})
            member = ensure_member(s, project, "U0FAST", now)
            member.state = MemberState.QUALIFIED
        done = 0
        print(f"{db.dialect}, {args.items:,} items; one annotator far ahead of everybody else")
        for checkpoint in (100, 1000, 3000, 6000):
            times = []
            while done < checkpoint:
                t0 = time.perf_counter()
                with db.session() as s:
                    project = get_project(s, "hist")
                    member = ensure_member(s, project, "U0FAST", now)
                    task = next_task(s, project, member, now, db.dialect, resume=False)
                    record_answer(s, team_id="T0", user_id="U0FAST", assignment_id=task.assignment_id,
                                  action="choose", value="a", now=now)
                times.append((time.perf_counter() - t0) * 1000)
                done += 1
            tail = times[-50:]
            print(f"  after {done:>5} own labels: serve + answer median {statistics.median(tail):.2f} ms")
        db.dispose()


if __name__ == "__main__":
    main()
