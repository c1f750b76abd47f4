"""Export time and peak memory at 1M labels (and at a tenth of that, to see that memory stays flat).

    .venv/bin/python bench/export_scale.py                      # 333,334 items x 3 = 1,000,002 labels
    .venv/bin/python bench/export_scale.py --items 33334        # a tenth
    .venv/bin/python bench/export_scale.py --all                # also parquet, csv, openai, Dawid-Skene
    .venv/bin/python bench/export_scale.py --keep /tmp/xbench   # keep the SQLite file

The project is bulk inserted (DB-API executemany) into a SQLite file in a temporary directory:
classification with 3 labels, 3 distinct annotators per item out of 30 (accuracy 0.6-0.95), a draft
per item, 1% gold items; items without a majority are escalated and a third of those resolved by an
expert (extra expert labels). Each export runs `labelbot export` in a fresh subprocess; the figures
are its wall time, the export's own time, and the subprocess's peak RSS (VmHWM, read by the child
itself), next to the peak RSS of a subprocess that only imports the same modules.
Target: peak RSS < 500 MB at 1M labels, and about the same at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SLUG = "xbench"
LABELS = ["billing", "bug", "feature"]
ANNOTATORS = 30
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
WORDS = [
    "the", "app", "charged", "me", "twice", "when", "I", "tried", "to", "log", "in", "and", "now", "my",
    "invoice", "shows", "a", "refund", "pending", "after", "the", "update",
]


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def build(path: str, n_items: int, seed: int = 11) -> dict[str, float]:
    import numpy as np

    from bot.services.projects import create_project
    from bot.spec import parse_spec
    from storage.db import Database
    from storage.models import Assignment, Draft, Gold, Item, Label, Member

    started = time.perf_counter()
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    spec = parse_spec({
        "slug": SLUG, "name": "Export bench", "task": "classification", "labels": LABELS,
        "instructions": "Pick the customer's main intent.", "members": {"leads": ["ULEAD"], "experts": ["UEXPERT"]},
    })
    with db.session() as s:
        project_id = create_project(s, spec, "TBENCH", T0).id
    raw = db.engine.raw_connection()
    cur = raw.cursor()

    def insert(table, columns: dict) -> None:  # type: ignore[no-untyped-def]
        names = list(columns)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        cur.execute("BEGIN")
        cur.executemany(sql, zip(*columns.values(), strict=True))
        cur.execute("COMMIT")

    def next_id(table: str) -> int:
        return int(cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]) + 1

    stamp = _ts(T0)
    users = [f"U{n:04d}" for n in range(ANNOTATORS)]
    insert(Member.__table__, {
        "project_id": [project_id] * ANNOTATORS, "team_id": ["TBENCH"] * ANNOTATORS, "user_id": users,
        "tier": ["crowd"] * ANNOTATORS, "state": ["qualified"] * ANNOTATORS, "served": [0] * ANNOTATORS,
        "created_at": [stamp] * ANNOTATORS,
    })
    member_of_user = dict(cur.execute("SELECT user_id, id FROM members WHERE project_id = ?", (project_id,)))
    members = np.array([member_of_user[u] for u in users], dtype=np.int64)
    expert_member = member_of_user["UEXPERT"]

    rng = np.random.default_rng(seed)
    keys = np.array([json.dumps(label) for label in LABELS], dtype=object)
    truth = rng.integers(0, len(LABELS), n_items)
    is_gold = rng.random(n_items) < 0.01
    # 3 distinct annotators per item: a, a + s1, a + s2 (mod 30) with 1 <= s1 < 15 <= s2 < 30
    a = rng.integers(0, ANNOTATORS, n_items)
    who = np.stack([a, (a + rng.integers(1, 15, n_items)) % ANNOTATORS,
                    (a + rng.integers(15, 30, n_items)) % ANNOTATORS], axis=1)
    accuracy = 0.6 + 0.35 * rng.random(ANNOTATORS)
    right = rng.random((n_items, 3)) < accuracy[who]
    value = np.where(right, truth[:, None], rng.integers(0, len(LABELS), (n_items, 3)))
    majority = (value[:, 0] == value[:, 1]) | (value[:, 0] == value[:, 2]) | (value[:, 1] == value[:, 2])
    resolved = ~majority & ~is_gold & (rng.random(n_items) < 1 / 3)
    status = np.where(is_gold, "gold", np.where(majority, "complete", np.where(resolved, "resolved", "escalated")))

    first_item = next_id("items")
    item_ids = np.arange(first_item, first_item + n_items)
    word_idx = rng.integers(0, len(WORDS), (n_items, 20))
    texts = [f"#{i}: " + " ".join(WORDS[j] for j in row) for i, row in enumerate(word_idx)]
    insert(Item.__table__, {
        "project_id": [project_id] * n_items, "external_id": [f"item-{i:07d}" for i in range(n_items)],
        "text": texts, "meta": [json.dumps({"source": "bench", "n": i}) for i in range(n_items)],
        "status": status.tolist(), "slots": [0] * n_items, "labels_done": [3] * n_items,
        "is_gold": is_gold.astype(int).tolist(),
        "escalation_reason": [None if m else "no majority among the crowd's labels" for m in majority.tolist()],
        "created_at": [stamp] * n_items, "updated_at": [stamp] * n_items,
    })
    del texts
    gold_ids = item_ids[is_gold]
    insert(Gold.__table__, {
        "project_id": [project_id] * len(gold_ids), "item_id": gold_ids.tolist(),
        "value": keys[truth[is_gold]].tolist(), "value_key": keys[truth[is_gold]].tolist(),
        "source": ["import"] * len(gold_ids), "created_at": [stamp] * len(gold_ids),
    })
    first_draft = next_id("drafts")
    draft_value = np.where(rng.random(n_items) < 0.85, truth, rng.integers(0, len(LABELS), n_items))
    insert(Draft.__table__, {
        "project_id": [project_id] * n_items, "item_id": item_ids.tolist(), "model": ["gpt-4o-mini"] * n_items,
        "prompt_version": ["v1"] * n_items, "status": ["ok"] * n_items, "value": keys[draft_value].tolist(),
        "value_key": keys[draft_value].tolist(), "confidence": [0.8] * n_items, "prompt_tokens": [400] * n_items,
        "cached_tokens": [0] * n_items, "completion_tokens": [10] * n_items, "attempts": [1] * n_items,
        "simulated": [0] * n_items, "created_at": [stamp] * n_items,
    })
    draft_ids = np.arange(first_draft, first_draft + n_items)

    # crowd labels (honeypots on gold items do not count), then expert labels on resolved items
    item_of = np.repeat(np.arange(n_items), 3)
    expert_items = np.flatnonzero(resolved)
    n_crowd, n_expert = len(item_of), len(expert_items)
    label_item = np.concatenate([item_of, expert_items])
    label_member = np.concatenate([members[who.ravel()], np.full(n_expert, expert_member)])
    label_user = np.concatenate([np.array(users, dtype=object)[who.ravel()], np.full(n_expert, "UEXPERT", object)])
    label_value = np.concatenate([value.ravel(), truth[expert_items]])
    kind = np.concatenate([np.where(is_gold[item_of], "honeypot", "production"), np.full(n_expert, "expert")])
    counts = np.concatenate([~is_gold[item_of], np.ones(n_expert, bool)])
    n = n_crowd + n_expert
    times = [_ts(T0 + timedelta(seconds=int(s))) for s in np.sort(rng.integers(0, 14 * 86400, n))]
    first_assignment = next_id("assignments")
    common = {
        "project_id": [project_id] * n, "item_id": item_ids[label_item].tolist(),
        "member_id": label_member.tolist(), "user_id": label_user.tolist(), "kind": kind.tolist(),
    }
    shown = np.concatenate([np.ones(n_crowd, bool), np.zeros(n_expert, bool)])
    insert(Assignment.__table__, {
        **common, "team_id": ["TBENCH"] * n, "round": [0] * n, "status": ["done"] * n,
        "draft_id": draft_ids[label_item].tolist(), "draft_shown": shown.astype(int).tolist(), "blind": [0] * n,
        "seq": [0] * n, "leased_at": times, "expires_at": times, "shown_at": times, "closed_at": times,
    })
    action = np.where(~shown, "manual", np.where(label_value == draft_value[label_item], "accept", "reject"))
    insert(Label.__table__, {
        **common, "assignment_id": list(range(first_assignment, first_assignment + n)), "action": action.tolist(),
        "value": keys[label_value].tolist(), "value_key": keys[label_value].tolist(),
        "draft_id": draft_ids[label_item].tolist(), "draft_shown": shown.astype(int).tolist(),
        "seconds": rng.lognormal(1.8, 0.5, n).round(2).tolist(), "counts": counts.astype(int).tolist(),
        "correct": [float(v == truth[i]) if g else None
                    for v, i, g in zip(label_value.tolist(), label_item.tolist(), is_gold[label_item].tolist(),
                                       strict=True)],
        "created_at": times,
    })
    cur.execute("ANALYZE")
    raw.close()
    db.dispose()
    return {"items": n_items, "labels": n, "build_seconds": round(time.perf_counter() - started, 1)}


def _peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM). Not getrusage(RUSAGE_CHILDREN) in the parent: on
    Linux a child's ru_maxrss keeps the RSS it had as a fork of the (large) parent before exec."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(args: list[str]) -> None:
    """In the subprocess: import, then run `labelbot export ARGS` (or nothing, for the baseline)."""
    import pyarrow.parquet  # noqa: F401  (imported by Parquet exports; counted in the baseline)

    import bot.services.export  # noqa: F401
    from bot.cli.export import export_cmd

    if args == ["--baseline"]:
        print(json.dumps({"peak_rss_mb": _peak_rss_mb()}))
        return
    t0 = time.perf_counter()
    export_cmd.main(args, standalone_mode=False)
    print(json.dumps({"export_seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": _peak_rss_mb()}))


def run_child(db_path: str, args: list[str]) -> dict[str, object]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_path}", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"export {args} failed:\n{proc.stderr}")
    result: dict[str, object] = {"wall_seconds": round(wall, 2)}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
        elif line.strip():
            result["said"] = line.strip()
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=333_334, help="items (3 labels each, plus expert labels)")
    parser.add_argument("--all", action="store_true", help="also parquet, csv, openai and Dawid-Skene")
    parser.add_argument("--keep", help="build into this directory and keep the files")
    ns = parser.parse_args()
    work = Path(ns.keep) if ns.keep else Path(tempfile.mkdtemp(prefix="labelbot-xbench-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path = str(work / "bench.db")
    if Path(db_path).exists():
        Path(db_path).unlink()
    print(json.dumps({"build": build(db_path, ns.items)}), flush=True)
    runs = [
        ("baseline (imports only)", ["--baseline"]),
        ("final jsonl", [SLUG, "--format", "jsonl", "--out", str(work / "final.jsonl")]),
        ("raw jsonl", [SLUG, "--raw", "--format", "jsonl", "--out", str(work / "raw.jsonl")]),
    ]
    if ns.all:
        runs += [
            ("final parquet", [SLUG, "--format", "parquet", "--out", str(work / "final.parquet")]),
            ("raw parquet", [SLUG, "--raw", "--format", "parquet", "--out", str(work / "raw.parquet")]),
            ("raw csv", [SLUG, "--raw", "--format", "csv", "--out", str(work / "raw.csv")]),
            ("openai", [SLUG, "--format", "openai", "--out", str(work / "openai.jsonl")]),
            ("final jsonl, Dawid-Skene", [SLUG, "--method", "dawid_skene", "--out", str(work / "ds.jsonl")]),
        ]
    for name, args in runs:
        result = run_child(db_path, args)
        out = Path(args[-1]) if args[-1] != "--baseline" else None
        if out is not None and out.exists():
            result["file_mb"] = round(out.stat().st_size / 2**20, 1)
        print(json.dumps({"run": name, **result}), flush=True)
    if not ns.keep:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
