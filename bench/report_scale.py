"""How long `build_report` takes, and how much memory it needs, at 100k and 1M labels.

    .venv/bin/python bench/report_scale.py                    # 100k and 1M labels
    .venv/bin/python bench/report_scale.py --sizes 100000     # one size
    .venv/bin/python bench/report_scale.py --keep /tmp/bench  # keep the SQLite files

Each size is built into a SQLite file in a temporary directory (bulk inserts through the DB-API,
3 annotators per item out of 30, every 10th item blind, 5% gold items answered as hidden checks,
labels spread over 14 days), then measured in a fresh subprocess: the figure is the wall (and CPU)
time of `build_report` over all the labels, then over the last 7 days as the daily summary does, and
the subprocess's peak RSS (from `os.wait4`, i.e. `getrusage` of the child), next to its RSS after
imports. tracemalloc would slow pandas down too much. The machine's load average is printed too:
on a shared box, CPU seconds are the steadier figure.
Targets at 1M labels: <= 10 s, <= 1.5 GB, and 10x the labels in <= 12x the time.

Measured on the 2-CPU development box with nothing else running (load average ~1): 100k labels
1.0 s and 338 MB peak RSS; 1M labels 7.1 s and 641 MB (280 MB of it imports); the 7-day daily
window of the 1M project 4.5-5.9 s. Under a load average of 8 the same run took ~19 s of wall time
for ~11 s of CPU, so read the CPU figure on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UNTIL = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAYS = 14
ANNOTATORS = 30
LABELS = ["billing", "bug", "feature", "account", "other"]
SLUG = "bench"


def _ts(seconds: float) -> str:
    return (datetime(1970, 1, 1) + timedelta(seconds=float(seconds))).strftime("%Y-%m-%d %H:%M:%S.%f")


def _nullable(values, keep) -> list:  # type: ignore[no-untyped-def]
    """Python values where `keep`, None elsewhere."""
    out = values.astype(object)
    out[~keep] = None
    return out.tolist()


def build(path: str, n_labels: int, seed: int = 7) -> dict[str, float]:
    """Write a project with about `n_labels` labels into the SQLite file at `path`."""
    import numpy as np

    from bot.services.projects import create_project
    from bot.spec import parse_spec
    from storage.db import Database
    from storage.models import Assignment, Draft, Gold, Item, Label, Member

    started = time.perf_counter()
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    spec = parse_spec(
        {
            "slug": SLUG,
            "name": "Bench intents",
            "task": "classification",
            "labels": LABELS,
            "members": {"leads": ["ULEAD"]},
            "llm": {"price_per_1m_input": 0.15, "price_per_1m_output": 0.6},
            "report": {"channel": "CBENCH", "time": "09:00", "timezone": "Europe/Paris"},
        }
    )
    with db.session() as s:
        project_id = create_project(s, spec, "TBENCH", UNTIL - timedelta(days=30)).id

    rng = np.random.default_rng(seed)
    n_items = n_labels // 3
    t_start = (UNTIL - timedelta(days=DAYS)).timestamp()
    created_item = _ts(t_start - 3600)
    keys = np.array([json.dumps(label) for label in LABELS], dtype=object)

    raw = db.engine.raw_connection()
    cur = raw.cursor()

    def insert(table, columns: dict) -> None:
        """executemany with every NOT NULL column: given ones, else the model's scalar default."""
        names, values = [], []
        n = len(next(iter(columns.values())))
        for col in table.columns:
            if col.name in columns:
                names.append(col.name)
                values.append(columns[col.name])
            elif col.primary_key:
                continue
            elif col.default is not None and getattr(col.default, "is_scalar", False):
                names.append(col.name)
                default = col.default.arg
                values.append([int(default) if isinstance(default, bool) else str(default)] * n)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        cur.execute("BEGIN")
        cur.executemany(sql, zip(*values, strict=True))
        cur.execute("COMMIT")

    # members: ids follow the leads created with the project
    users = [f"U{n:04d}" for n in range(1, ANNOTATORS + 1)]
    insert(
        Member.__table__,
        {
            "project_id": [project_id] * ANNOTATORS,
            "team_id": ["TBENCH"] * ANNOTATORS,
            "user_id": users,
            "tier": ["crowd"] * ANNOTATORS,
            "state": ["suspended" if n in (3, 17) else "qualified" for n in range(ANNOTATORS)],
            "served": [0] * ANNOTATORS,
            "state_reason": ["hidden checks below the floor" if n in (3, 17) else None for n in range(ANNOTATORS)],
            "suspended_at": [_ts(UNTIL.timestamp() - 86400) if n in (3, 17) else None for n in range(ANNOTATORS)],
            "created_at": [created_item] * ANNOTATORS,
        },
    )
    member_ids = dict(cur.execute("SELECT user_id, id FROM members WHERE project_id = ?", (project_id,)).fetchall())

    # items, gold, drafts
    first_item = (cur.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0]) + 1
    item_ids = np.arange(first_item, first_item + n_items)
    is_gold = (np.arange(n_items) % 20) == 7
    truth = rng.integers(0, len(LABELS), n_items)
    insert(
        Item.__table__,
        {
            "project_id": [project_id] * n_items,
            "external_id": [f"e{i}" for i in range(n_items)],
            "text": ["A customer message about something."] * n_items,
            "meta": [None] * n_items,
            "status": np.where(is_gold, "gold", "complete").tolist(),
            "slots": [0] * n_items,
            "labels_done": [3] * n_items,
            "is_gold": is_gold.astype(int).tolist(),
            "created_at": [created_item] * n_items,
            "updated_at": [created_item] * n_items,
        },
    )
    gold_items = item_ids[is_gold]
    insert(
        Gold.__table__,
        {
            "project_id": [project_id] * len(gold_items),
            "item_id": gold_items.tolist(),
            "value": keys[truth[is_gold]].tolist(),
            "value_key": keys[truth[is_gold]].tolist(),
            "explanation": [None] * len(gold_items),
            "source": ["import"] * len(gold_items),
            "created_at": [created_item] * len(gold_items),
        },
    )
    draft_value = np.where(rng.random(n_items) < 0.85, truth, rng.integers(0, len(LABELS), n_items))
    first_draft = (cur.execute("SELECT COALESCE(MAX(id), 0) FROM drafts").fetchone()[0]) + 1
    draft_ids = np.arange(first_draft, first_draft + n_items)
    # Items are served roughly in id order, drafts made just ahead: times grow with the item id.
    draft_times = t_start + np.sort(rng.random(n_items)) * (DAYS * 86400 - 7200)
    insert(
        Draft.__table__,
        {
            "project_id": [project_id] * n_items,
            "item_id": item_ids.tolist(),
            "model": ["gpt-4o-mini"] * n_items,
            "prompt_version": ["v1"] * n_items,
            "status": ["ok"] * n_items,
            "value": keys[draft_value].tolist(),
            "value_key": keys[draft_value].tolist(),
            "confidence": rng.random(n_items).round(3).tolist(),
            "prompt_tokens": [420] * n_items,
            "cached_tokens": [256] * n_items,
            "completion_tokens": [12] * n_items,
            "latency_ms": (200 + 300 * rng.random(n_items)).round(1).tolist(),
            "attempts": [1] * n_items,
            "simulated": [0] * n_items,
            "created_at": [_ts(t) for t in draft_times],
        },
    )

    # assignments and labels: 3 distinct annotators per item
    who = np.argsort(rng.random((n_items, ANNOTATORS)), axis=1)[:, :3].astype(np.int64)
    n = n_items * 3
    item_of = np.repeat(np.arange(n_items), 3)
    annotator = who.ravel()
    accuracy = 0.7 + 0.25 * rng.random(ANNOTATORS)
    shown = (np.arange(n_items) % 10 != 0)[item_of] & ~is_gold[item_of]
    right = rng.random(n) < accuracy[annotator]
    value = np.where(right, truth[item_of], rng.integers(0, len(LABELS), n))
    anchored = shown & (rng.random(n) < 0.3)
    value = np.where(anchored, draft_value[item_of], value)
    action = np.where(~shown, "manual", np.where(value == draft_value[item_of], "accept", "reject"))
    kind = np.where(is_gold[item_of], "honeypot", "production")
    seconds = np.where(shown, rng.lognormal(1.6, 0.5, n), rng.lognormal(2.2, 0.5, n)).round(2)
    times = draft_times[item_of] + 60 + rng.random(n) * 7000
    # Rows are written as they happen: assignments and labels in time order.
    order = np.argsort(times, kind="stable")
    item_of, annotator, shown, value = item_of[order], annotator[order], shown[order], value[order]
    action, kind, seconds, times = action[order], kind[order], seconds[order], times[order]
    stamp = [_ts(t) for t in times]
    first_assignment = (cur.execute("SELECT COALESCE(MAX(id), 0) FROM assignments").fetchone()[0]) + 1
    member_of = np.array([member_ids[u] for u in users], dtype=np.int64)[annotator]
    user_of = np.array(users, dtype=object)[annotator]
    common = {
        "project_id": [project_id] * n,
        "item_id": item_ids[item_of].tolist(),
        "member_id": member_of.tolist(),
        "user_id": user_of.tolist(),
        "kind": kind.tolist(),
    }
    insert(
        Assignment.__table__,
        {
            **common,
            "team_id": ["TBENCH"] * n,
            "status": ["done"] * n,
            "draft_id": draft_ids[item_of].tolist(),
            "draft_shown": shown.astype(int).tolist(),
            "blind": (~shown).astype(int).tolist(),
            "leased_at": stamp,
            "expires_at": stamp,
            "closed_at": stamp,
        },
    )
    insert(
        Label.__table__,
        {
            **common,
            "assignment_id": np.arange(first_assignment, first_assignment + n).tolist(),
            "action": action.tolist(),
            "value": keys[value].tolist(),
            "value_key": keys[value].tolist(),
            "draft_id": _nullable(draft_ids[item_of], shown),
            "draft_shown": shown.astype(int).tolist(),
            "seconds": seconds.tolist(),
            "counts": [1] * n,
            "correct": _nullable((value == truth[item_of]).astype(float), is_gold[item_of]),
            "created_at": stamp,
        },
    )
    raw.commit()
    cur.execute("ANALYZE")
    raw.close()
    db.dispose()
    return {"labels": n, "items": n_items, "build_seconds": round(time.perf_counter() - started, 1)}


def measure(path: str) -> dict[str, float]:
    """Run in a fresh process: import, then time build_report (and the renderings) once."""
    import bot.services.drafting  # noqa: F401
    from bot.blocks.report import summary_blocks
    from bot.services import reports  # noqa: F401  (imports counted in the baseline RSS)
    from bot.services.reports import build_report
    from bot.services.reports.chart import report_chart
    from storage.db import Database

    db = Database(f"sqlite:///{path}")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    report = build_report(db, SLUG, since=UNTIL - timedelta(days=DAYS), until=UNTIL, now=UNTIL)
    t1, c1 = time.perf_counter(), time.process_time()
    data = report.to_json()
    blocks = summary_blocks(data)
    png = report_chart(data)
    t2 = time.perf_counter()
    # The daily summary's shape: the last 7 days (half the labels), last week counted in SQL.
    t3, c3 = time.perf_counter(), time.process_time()
    build_report(db, SLUG, since=UNTIL - timedelta(days=7), until=UNTIL, now=UNTIL)
    t4, c4 = time.perf_counter(), time.process_time()
    return {
        "daily_seconds": round(t4 - t3, 3),
        "daily_cpu_seconds": round(c4 - c3, 3),
        "labels": report.labels,
        "build_report_seconds": round(t1 - t0, 3),
        "build_report_cpu_seconds": round(c1 - c0, 3),
        "render_seconds": round(t2 - t1, 3),
        "blocks": len(blocks),
        "png_bytes": len(png),
        "alerts": len(data["alerts"]),
        "rss_after_imports_mb": round(baseline / 1024, 1),
        "steps": report.timings,
    }


def _child(args: list[str]) -> tuple[dict, float]:
    """Run this script with `args` in a subprocess; return its JSON output and its peak RSS in MB."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child {args} failed with status {proc.returncode}")
    return json.loads(out), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--keep", help="directory for the SQLite files (kept; reused when present)")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        print(json.dumps(build(args.db, args.build)))
        return
    if args.measure:
        print(json.dumps(measure(args.db)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="labelbot-bench-") as tmp:
        where = Path(args.keep or tmp)
        where.mkdir(parents=True, exist_ok=True)
        results = []
        for size in sizes:
            path = where / f"report_{size}.db"
            if not path.exists():
                built, _ = _child(["--build", str(size), "--db", str(path)])
                print(f"built {built['labels']:,} labels ({built['items']:,} items) in {built['build_seconds']} s")
            result, peak = _child(["--measure", "--db", str(path)])
            result["peak_rss_mb"] = round(peak, 1)
            results.append(result)
            print(
                f"{result['labels']:>9,} labels: build_report {result['build_report_seconds']:.2f} s wall "
                f"({result['build_report_cpu_seconds']:.2f} s CPU), "
                f"render (blocks + chart) {result['render_seconds']:.2f} s, peak RSS {peak:,.0f} MB "
                f"(after imports {result['rss_after_imports_mb']:,.0f} MB), {result['alerts']} alerts"
            )
            print(
                f"           the daily summary's 7-day window of it: {result['daily_seconds']:.2f} s wall "
                f"({result['daily_cpu_seconds']:.2f} s CPU)"
            )
            steps = result["steps"]
            print(
                "           steps (wall/CPU s): "
                + ", ".join(f"{k} {v:.2f}/{steps.get('cpu:' + k, 0):.2f}" for k, v in steps.items() if ":" not in k)
            )
        if len(results) >= 2:
            a, b = results[0], results[-1]
            print(
                f"{b['labels'] / a['labels']:.1f}x the labels took "
                f"{b['build_report_seconds'] / a['build_report_seconds']:.1f}x the wall time, "
                f"{b['build_report_cpu_seconds'] / a['build_report_cpu_seconds']:.1f}x the CPU time"
            )
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
