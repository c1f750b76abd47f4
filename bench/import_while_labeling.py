"""What a big import costs the people labeling at the same time, and what the safe import costs itself.

    .venv/bin/python bench/import_while_labeling.py [--rows 100000] [--postgres URL] [--rebalance 200000]

1. Clicks during an import (SQLite, one file, as deployed on a single machine): the real Bolt app over
   HTTP against the FakeSlack, one annotator clicking as fast as the app answers, while another
   process imports `--rows` items into the same project:
   - staged: what `labelbot import` runs (check the whole file first, stage and publish in short
     transactions);
   - one transaction: the old way (`import_items` inside one `Database.session()`: the write lock is
     held from the first row checked to the last row written).
   Prints the click latencies seen while the import ran (HTTP request -> 200, i.e. the answer stored),
   the clicks that failed, and the import's own wall time.
2. Import throughput alone (no clicks): staged vs one transaction, SQLite (and PostgreSQL with
   `--postgres`).
3. `project update` with a new redundancy over `--rebalance` items (slots recomputed from labels and
   open leases, then the completion check): its wall time, SQLite (and PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import create_engine, text

from bot.app import build_app, build_deps
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.sandbox.driver import Driver
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.http import serve_wsgi
from bot.services import completion
from bot.services.importer import import_items, import_items_staged
from bot.services.projects import create_project, ensure_member, get_project, update_project
from bot.spec import parse_spec
from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"slug": "bench", "name": "Bench", "task": "classification", "labels": ["a", "b", "c"], "redundancy": 1,
        "blind_every": 0, "gold_rate": 0, "llm": {"enabled": False}}
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
TEAM = "T0BENCH"
# Both run as a separate process through the service (what `labelbot import` calls; the CLI itself adds
# its start-up, the same for both).
STAGED = """
import sys
from datetime import UTC, datetime
from bot.services.importer import import_items_staged
from storage.db import Database
import_items_staged(Database(sys.argv[1]), "bench", sys.argv[2], datetime.now(UTC))
"""
ONE_TRANSACTION = """
import sys
from datetime import UTC, datetime
from bot.services.importer import import_items
from bot.services.projects import get_project
from storage.db import Database
db = Database(sys.argv[1])
with db.session() as s:
    import_items(s, get_project(s, "bench"), sys.argv[2], datetime.now(UTC))
"""


def now() -> datetime:
    return datetime.now(UTC)


def write_items(path: Path, rows: int, prefix: str) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(json.dumps({"id": f"{prefix}{i}", "text": f"the refund for invoice {i} never arrived",
                                 "lang": "en"}) + "\n")
    return path


def fresh_db(url: str) -> Database:
    db = Database(url)
    db.upgrade()
    with db.session() as s:
        create_project(s, parse_spec(SPEC), TEAM, now())
    return db


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def clicks_during(tmp: Path, rows: int, mode: str) -> None:
    db = fresh_db(f"sqlite:///{tmp}/{mode}.db")
    seed = write_items(tmp / f"seed-{mode}.jsonl", 3000, "s")
    with db.session() as s:
        import_items(s, get_project(s, "bench"), seed, now())
        member = ensure_member(s, get_project(s, "bench"), "U0ANN", now())
        member.state = "qualified"
    big = write_items(tmp / f"big-{mode}.jsonl", rows, "n")
    with FakeSlack(bot_token=TOKEN, team_id=TEAM) as fake:
        settings = Settings(database_url=db.url, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=fake.api_url, dm_rate=0)
        deps = build_deps(settings, clock=SystemClock(), db=db)
        app = build_app(deps)
        try:
            with serve_wsgi(SlackRequestHandler(app)) as base:
                ann = Driver(f"{base}/slack/events", SECRET, fake, TEAM, "U0ANN", "ann")
                ann.command("/label")
                msg = fake.wait_for(lambda: fake.last_message(ann.dm))
                env = {**os.environ, "DATABASE_URL": db.url, "PYTHONPATH": str(ROOT)}
                script = STAGED if mode == "staged" else ONE_TRANSACTION
                command = [sys.executable, "-c", script, db.url, str(big)]
                started = time.monotonic()
                proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                latencies: list[float] = []
                failed = 0
                while proc.poll() is None:
                    before = len(fake.messages(ann.dm))
                    t0 = time.monotonic()
                    status = ann.click(msg, "label.choose:0").status
                    latencies.append(time.monotonic() - t0)
                    if status != 200:
                        failed += 1
                        ann.command("/label")
                    try:
                        msg = fake.wait_for(
                            lambda b=before: len(fake.messages(ann.dm)) > b and fake.last_message(ann.dm), timeout=60)
                    except AssertionError:
                        failed += 1
                elapsed = time.monotonic() - started
                assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            deps.close()
    db.dispose()
    print(f"  {mode:15} import {rows:,} rows in {elapsed:5.1f} s while {len(latencies)} clicks: median "
          f"{statistics.median(latencies) * 1000:6.1f} ms, p99 {pct(latencies, 0.99) * 1000:7.1f} ms, "
          f"max {max(latencies) * 1000:7.1f} ms, failed {failed}")


def throughput(url: str, tmp: Path, rows: int, label: str) -> None:
    path = write_items(tmp / f"tp-{uuid.uuid4().hex[:6]}.jsonl", rows, "t")
    for mode in ("staged", "one transaction"):
        db = fresh_db(url if "{}" not in url else url.format(uuid.uuid4().hex[:6]))
        t0 = time.perf_counter()
        if mode == "staged":
            result = import_items_staged(db, "bench", path, now())
        else:
            with db.session() as s:
                result = import_items(s, get_project(s, "bench"), path, now())
        elapsed = time.perf_counter() - t0
        assert result.inserted == rows
        db.dispose()
        print(f"  {label:10} {mode:15} {rows:,} rows: {elapsed:5.1f} s = {rows / elapsed:8,.0f} rows/s")


def rebalance(url: str, items: int, label: str) -> None:
    db = fresh_db(url)
    engine = db.engine
    with engine.begin() as conn:
        pid = conn.execute(text("SELECT id FROM projects WHERE slug = 'bench'")).scalar()
        stamp = now().replace(tzinfo=None).isoformat(sep=" ") if db.dialect == "sqlite" else now()
        conn.execute(text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :items) "
            "INSERT INTO items (project_id, external_id, text, status, slots, labels_done, is_gold, created_at, "
            "updated_at) SELECT :pid, 'r' || i, 'text ' || i, 'open', 3, i % 3, false, :t, :t FROM n"),
            {"items": items, "pid": pid, "t": stamp})
        conn.execute(text("ANALYZE"))
    with db.session() as s:
        update_project(s, parse_spec({**SPEC, "redundancy": 3}), now(), rebalance_items=False)
    spec = parse_spec({**SPEC, "redundancy": 2})
    t0 = time.perf_counter()
    with db.session() as s:  # what `labelbot project update` does: the spec, then the items in chunks
        update_project(s, spec, now(), rebalance_items=False)
    chunks: list[float] = []
    original = completion.rebalance

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            chunks.append(time.perf_counter() - started)

    completion.rebalance = timed
    try:
        done = completion.rebalance_in_chunks(db, pid, spec, now())
    finally:
        completion.rebalance = original
    elapsed = time.perf_counter() - t0
    db.dispose()
    print(f"  {label:10} redundancy 3 -> 2 over {items:,} items: {elapsed:5.2f} s in {len(chunks)} transactions, "
          f"the longest {max(chunks) * 1000:.0f} ms (items {done.describe()})")


def pg_schema_url(base: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rebalance", type=int, default=200_000)
    ap.add_argument("--postgres", help="a PostgreSQL URL (each run gets its own schema)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"1. clicks while importing {args.rows:,} items (SQLite)")
        for mode in ("staged", "one transaction"):
            clicks_during(tmp, args.rows, mode)
        print("2. import throughput, no clicks")
        throughput(f"sqlite:///{tmp}/tp-{{}}.db", tmp, args.rows, "sqlite")
        print("3. project update: a new redundancy")
        rebalance(f"sqlite:///{tmp}/rebalance.db", args.rebalance, "sqlite")
        if args.postgres:
            for step in (lambda url: _throughput_pg(url, tmp, args.rows),
                         lambda url: rebalance(url, args.rebalance, "postgresql")):
                url, drop = pg_schema_url(args.postgres)
                try:
                    step(url)
                finally:
                    drop()
    print("(a shared 2-core machine: treat the figures as orders of magnitude)")


def _throughput_pg(url: str, tmp: Path, rows: int) -> None:
    """Both modes on one schema, one project each (PostgreSQL schemas are cheap, projects cheaper)."""
    path = write_items(tmp / "tp-pg.jsonl", rows, "t")
    db = Database(url)
    db.upgrade()
    for mode in ("staged", "one transaction"):
        slug = "pg-" + mode.replace(" ", "-")
        with db.session() as s:
            create_project(s, parse_spec({**SPEC, "slug": slug}), TEAM, now())
        t0 = time.perf_counter()
        if mode == "staged":
            result = import_items_staged(db, slug, path, now())
        else:
            with db.session() as s:
                result = import_items(s, get_project(s, slug), path, now())
        elapsed = time.perf_counter() - t0
        assert result.inserted == rows
        print(f"  {'postgresql':10} {mode:15} {rows:,} rows: {elapsed:5.1f} s = {rows / elapsed:8,.0f} rows/s")
    db.dispose()


if __name__ == "__main__":
    main()
