"""Import throughput: writes N items to a .jsonl (and .csv) file and imports them into a fresh database.

    .venv/bin/python bench/import_speed.py [--rows 1000000] [--postgres URL]

Prints rows/s for validation + insert (the whole `import_items` call, one transaction).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from bot.services.importer import import_items
from bot.services.projects import create_project
from bot.spec import parse_spec
from storage.db import Database

SPEC = {"slug": "bench", "name": "Bench", "task": "classification", "labels": ["a", "b", "c"]}
WORDS = [
    "the",
    "app",
    "crashed",
    "when",
    "I",
    "tried",
    "to",
    "pay",
    "my",
    "invoice",
    "and",
    "the",
    "refund",
    "never",
    "arrived",
    "please",
    "help",
]


def write_jsonl(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(12))
            fh.write(json.dumps({"id": f"item-{i}", "text": f"{words} #{i}", "lang": "en"}) + "\n")


def run(url: str, path: Path, rows: int) -> tuple[float, float]:
    db = Database(url)
    db.upgrade()
    with db.session() as s:
        create_project(s, parse_spec(SPEC), "T0BENCH", _now())
    start = time.perf_counter()
    with db.session() as s:
        from bot.services.projects import get_project

        result = import_items(s, get_project(s, "bench"), path, _now())
    elapsed = time.perf_counter() - start
    assert result.inserted == rows
    start = time.perf_counter()
    with db.session() as s:
        again = import_items(s, get_project(s, "bench"), path, _now())
    noop = time.perf_counter() - start
    assert again.unchanged == rows
    db.dispose()
    return elapsed, noop


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--postgres", help="a PostgreSQL URL (an empty database or schema) to run against as well")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.jsonl"
        t0 = time.perf_counter()
        write_jsonl(path, args.rows)
        print(f"wrote {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
        targets = [("sqlite", f"sqlite:///{tmp}/bench.db")]
        if args.postgres:
            targets.append(("postgresql", args.postgres))
        for name, url in targets:
            elapsed, noop = run(url, path, args.rows)
            print(
                f"{name:10} import {args.rows:,} rows: {elapsed:.1f} s = {args.rows / elapsed:,.0f} rows/s; "
                f"re-import (no-op) {noop:.1f} s = {args.rows / noop:,.0f} rows/s"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
