"""Do drafts stay ahead of 50 annotators? Prefetch against a fake LLM with 2 s latency.

    .venv/bin/python bench/prefetch.py [--seconds 60] [--concurrency 16] [--buffer 200] [--no-warmup]
                                       [--annotators 50] [--every 3] [--latency 2] [--postgres URL]

Set-up: a FakeOpenAI on 127.0.0.1 answering every chat completion after `--latency` seconds; a
project with `--items` open items (redundancy 3); the real prefetch job (`bot.drafting.schedule` on
an APScheduler BackgroundScheduler, every 5 s, passes back to back while a pass hits its cap).

1. Warm-up (skip with --no-warmup): the worker drafts the first `buffer` items from nothing, no
   annotators yet. This phase always has a backlog, so it measures the worker's saturated
   throughput: drafts/s ÷ (concurrency / latency). Target >= 0.9.
2. Serving: `--annotators` simulated annotators each take one item every `--every` seconds (start
   times spread over the first period), for `--seconds` of wall time. A serve takes the first item
   in serving order (status 'open', slots > 0, ORDER BY slots, id) the annotator has not had yet,
   checks `current_draft` for an ok draft, and decrements the item's slots, as the labeling loop
   does. Figure: share of serves that had an ok draft. Target >= 95%.

Printed, no asserts.

Sizing (what meets the targets). Fresh items are needed at f = annotators / (every * redundancy)
per second (50 / (3 * 3) = 5.6/s here). Set `llm.concurrency` >= 1.4 * f * latency (headroom over
demand: 16 for 2 s latency) and `llm.buffer` >= 2 * f * (5 s tick + 2 * latency), i.e. >= 100; 200
also keeps the warm-up saturated. The spec defaults (concurrency 4, buffer 50) are sized for a few
annotators: at this load they serve ~20% of items with a draft.

Measured on SQLite (other jobs running on the machine), `bench/prefetch.py` defaults (concurrency
16, buffer 200): warm-up 200 drafts in 27.4 s = 7.29 drafts/s = 0.91 of concurrency/latency, 15.3
of 16 calls in flight; serving 60 s: 1000/1000 serves (100%) had an ok draft. `--no-warmup`
(annotators arrive with the worker): 89.6%, the misses all in the first seconds; concurrency 32
gets the cold start to 95.4%. Concurrency 12: 100% after warm-up, 0.93 throughput.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select, update

from bot.app import Deps
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.core.enums import ItemStatus
from bot.sandbox.fake_openai import FakeOpenAI
from bot.services import drafting
from bot.services.projects import create_project, get_project
from bot.spec import parse_spec
from storage.db import Database
from storage.models import Draft, Item

MODEL = "bench-model"


def make_db(args: argparse.Namespace, tmp: Path) -> Database:
    if args.postgres:
        import uuid

        from sqlalchemy import create_engine, text

        from storage.db import normalize_url

        base = normalize_url(args.postgres)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with create_engine(base, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in base else "?"
        db = Database(f"{base}{sep}options=-csearch_path%3D{schema}")
        db.cleanup = lambda: _drop_schema(base, schema)  # type: ignore[attr-defined]
    else:
        db = Database(f"sqlite:///{tmp / 'bench.db'}")
    db.upgrade()
    return db


def _drop_schema(base: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def seed(db: Database, args: argparse.Namespace) -> int:
    spec = parse_spec({
        "slug": "bench", "name": "Prefetch bench", "task": "classification",
        "labels": [{"name": "billing", "description": "money"}, "bug", "feature", "other"],
        "instructions": "Pick the customer's main intent.", "redundancy": args.redundancy, "gold_rate": 0,
        "llm": {"model": MODEL, "buffer": args.buffer, "concurrency": args.concurrency, "few_shot": 0,
                "timeout_seconds": 30},
    })
    now = datetime.now(UTC)
    with db.session() as s:
        project = create_project(s, spec, "T0BENCH", now)
        s.execute(
            Item.__table__.insert(),
            [
                {"project_id": project.id, "external_id": f"item-{i}", "text": f"ticket {i}: the app crashed",
                 "status": ItemStatus.OPEN.value, "slots": args.redundancy, "labels_done": 0, "is_gold": False,
                 "created_at": now, "updated_at": now}
                for i in range(args.items)
            ],
        )
        return project.id


@dataclass
class Serving:
    serves: int = 0
    hits: int = 0
    first_serves: int = 0  # an item's first serve (it was fresh)
    first_hits: int = 0
    late_ms: list[float] = field(default_factory=list)  # how far behind schedule serves ran


def serve_loop(db: Database, project_id: int, args: argparse.Namespace, stop_at: float, out: Serving) -> None:
    """One thread plays every annotator: a heap of next-serve times, each serve one short transaction."""
    rng = random.Random(1)
    start = time.monotonic()
    heap = [(start + rng.uniform(0, args.every), a) for a in range(args.annotators)]
    heapq.heapify(heap)
    seen: dict[int, set[int]] = {a: set() for a in range(args.annotators)}
    while heap:
        due, who = heapq.heappop(heap)
        if due >= stop_at:
            break
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            out.late_ms.append(-pause * 1000)
        with db.session() as s:
            q = (select(Item.id, Item.slots)
                 .where(Item.project_id == project_id, Item.status == ItemStatus.OPEN.value, Item.slots > 0)
                 .order_by(Item.slots, Item.id).limit(1))
            if seen[who]:
                q = q.where(Item.id.not_in(seen[who]))
            row = s.execute(q).first()
            if row is None:
                break
            item_id, slots = row
            d = drafting.current_draft(s, item_id, MODEL)
            ok = d is not None and d.status == "ok"
            out.serves += 1
            out.hits += ok
            if slots == args.redundancy:
                out.first_serves += 1
                out.first_hits += ok
            s.execute(update(Item).where(Item.id == item_id).values(
                slots=slots - 1, status=ItemStatus.OPEN.value if slots > 1 else ItemStatus.COMPLETE.value))
        seen[who].add(item_id)
        heapq.heappush(heap, (due + args.every, who))


def counts(db: Database, project_id: int) -> tuple[int, int]:
    with db.read() as s:
        ok = s.scalar(select(func.count()).select_from(Draft).where(
            Draft.project_id == project_id, Draft.status.in_(["ok", "error"])))
        pending = s.scalar(select(func.count()).select_from(Draft).where(
            Draft.project_id == project_id, Draft.status == "pending"))
    return int(ok or 0), int(pending or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="wall time of the serving phase")
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--every", type=float, default=3.0, help="seconds between one annotator's serves")
    ap.add_argument("--latency", type=float, default=2.0, help="fake LLM latency per call, seconds")
    ap.add_argument("--concurrency", type=int, default=16, help="llm.concurrency")
    ap.add_argument("--buffer", type=int, default=200, help="llm.buffer (lookahead, and cap per pass)")
    ap.add_argument("--redundancy", type=int, default=3)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--no-warmup", action="store_true", help="start annotators together with the worker")
    ap.add_argument("--postgres", help="PostgreSQL URL (a throwaway schema is created); default SQLite")
    args = ap.parse_args()
    # A pass longer than the 5 s tick makes APScheduler skip ticks, with a warning each time: expected here.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(latency=args.latency) as fake:
        db = make_db(args, Path(tmp))
        project_id = seed(db, args)
        drafter = drafting.Drafter(Settings(openai_api_key="sk-bench", openai_base_url=fake.base_url))
        deps = Deps(settings=drafter.settings, db=db, clock=SystemClock(), drafter=drafter)
        scheduler = BackgroundScheduler(timezone="UTC")
        drafting.schedule(scheduler, deps)
        capacity = args.concurrency / args.latency
        fresh_demand = args.annotators / args.every / args.redundancy

        print(f"database {db.dialect}; {args.items} open items, redundancy {args.redundancy}; "
              f"fake LLM latency {args.latency:g}s; concurrency {args.concurrency}, buffer {args.buffer}")
        print(f"capacity {capacity:.2f} drafts/s; demand {args.annotators / args.every:.2f} serves/s = "
              f"{fresh_demand:.2f} fresh items/s")

        t0 = time.monotonic()
        scheduler.start()
        inflight: list[int] = []
        if not args.no_warmup:
            while counts(db, project_id)[0] < args.buffer and time.monotonic() - t0 < 300:
                inflight.append(counts(db, project_id)[1])
                time.sleep(0.25)
            fill = time.monotonic() - t0
            made = counts(db, project_id)[0]
            rate = made / fill
            print(f"\nwarm-up: {made} drafts in {fill:.1f}s = {rate:.2f} drafts/s; "
                  f"throughput / (concurrency/latency) = {rate / capacity:.2f} (target >= 0.9); "
                  f"mean in flight {statistics.fmean(inflight or [0]):.1f} of {args.concurrency}")

        before, _ = counts(db, project_id)
        out = Serving()
        started = time.monotonic()
        stop_at = started + args.seconds
        server = threading.Thread(target=serve_loop, args=(db, project_id, args, stop_at, out), daemon=True)
        server.start()
        samples: list[int] = []
        while server.is_alive():
            samples.append(counts(db, project_id)[1])
            server.join(0.5)
        elapsed = time.monotonic() - started
        after, _ = counts(db, project_id)
        scheduler.shutdown(wait=True)

        with db.read() as s:
            project = get_project(s, "bench")
            spec_model = project.spec["llm"]["model"]
            lat = drafting.draft_stats(s, project_id, datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC),
                                       parse_spec(project.spec))["latency_ms"]
        share = out.hits / out.serves if out.serves else 0.0
        fresh_share = out.first_hits / out.first_serves if out.first_serves else 0.0
        drafted = after - before
        print(f"\nserving {elapsed:.1f}s: {out.serves} serves ({out.serves / elapsed:.2f}/s), "
              f"{out.first_serves} fresh items")
        print(f"served with an ok draft: {out.hits}/{out.serves} = {share:.1%} (target >= 95%); "
              f"first serves of an item: {fresh_share:.1%}")
        print(f"drafted while serving: {drafted} = {drafted / elapsed:.2f} drafts/s = "
              f"{drafted / elapsed / capacity:.2f} of capacity (demand-limited: fresh demand is "
              f"{fresh_demand / capacity:.2f} of capacity); mean in flight "
              f"{statistics.fmean(samples or [0]):.1f} of {args.concurrency}")
        print(f"draft latency ms ({spec_model}): mean {lat['mean']:.0f}, p50 {lat['p50']:.0f}, p95 {lat['p95']:.0f}; "
              f"serve loop late by > 100 ms: {sum(x > 100 for x in out.late_ms)} times")
        db.dispose()
        getattr(db, "cleanup", lambda: None)()


if __name__ == "__main__":
    main()
