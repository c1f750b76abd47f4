"""Pipeline figures: exports in every format, imports carrying predictions, webhook delivery throughput.

    .venv/bin/python bench/pipelines.py                     # 20,000 items x 3 labels, 2,000 webhook events
    .venv/bin/python bench/pipelines.py --items 5000 --events 500

The project is built by `bench/export_scale.build` (a SQLite file in a temporary directory; classification,
3 labels per item, metadata {"source", "n"} on every item). Each export runs in this process through
`export_project` (wall seconds, rows). The import figure compares a JSONL of N items with and without a
`draft` prediction on every row (each prediction is a draft row). Webhooks: N `item.completed` events
written to the outbox, then `deliver_due` POSTs them to a local receiver on 127.0.0.1 (the standard
library's threaded HTTP server answering 200) and the figure is events per second. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _export_figures(db_path: str, out_dir: Path) -> list[tuple[str, int, float]]:
    from bench.export_scale import SLUG
    from bot.services.export import ExportOptions, export_project
    from storage.db import Database

    db = Database(f"sqlite:///{db_path}")
    now = datetime(2026, 1, 6, tzinfo=UTC)
    cases = [
        ("final jsonl", ExportOptions(), "f.jsonl"),
        ("final csv (metadata in columns)", ExportOptions(fmt="csv"), "f.csv"),
        ("final parquet (metadata in columns)", ExportOptions(fmt="parquet"), "f.parquet"),
        ("openai, --validation 0.1", ExportOptions(fmt="openai", validation=0.1), "ft.jsonl"),
    ]
    try:
        import datasets  # noqa: F401

        cases.append(("hf DatasetDict, --validation 0.1", ExportOptions(fmt="hf", validation=0.1), "hf"))
    except ImportError:
        print("(datasets is not installed: no hf figure; pip install 'labelbot[hf]')")
    out = []
    for name, options, filename in cases:
        started = time.perf_counter()
        result = export_project(db, SLUG, out_dir / filename, options, now=now, escalate=False)
        out.append((name, result.rows, time.perf_counter() - started))
    db.dispose()
    return out


def _import_figures(tmp: Path, n: int) -> list[tuple[str, int, float]]:
    from bot.services.importer import import_items
    from bot.services.projects import create_project
    from bot.spec import parse_spec
    from storage.db import Database

    out = []
    for with_draft in (False, True):
        path = tmp / f"items-{with_draft}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for i in range(n):
                row = {"id": f"i{i}", "text": f"the app charged me twice {i}", "source": "bench"}
                if with_draft:
                    row.update(draft=["billing", "bug", "feature"][i % 3], draft_confidence=0.8, draft_model="bert")
                fh.write(json.dumps(row) + "\n")
        db = Database(f"sqlite:///{tmp / f'import-{with_draft}.db'}")
        db.upgrade()
        spec = parse_spec({"slug": "imp", "name": "Import", "task": "classification",
                           "labels": ["billing", "bug", "feature"]})
        now = datetime(2026, 1, 5, tzinfo=UTC)
        started = time.perf_counter()
        with db.session() as s:
            import_items(s, create_project(s, spec, "T0BENCH", now), path, now)
        out.append(("import, a prediction on every row" if with_draft else "import, no predictions", n,
                    time.perf_counter() - started))
        db.dispose()
    return out


def _webhook_figures(tmp: Path, n: int) -> list[tuple[str, int, float]]:
    from bot.sandbox.http import FakeHTTPServer, Response
    from bot.services import webhooks
    from bot.services.projects import create_project, spec_of
    from bot.spec import parse_spec
    from storage.db import Database

    class Sink(FakeHTTPServer):
        count = 0

        def handle(self, request):  # type: ignore[no-untyped-def]
            self.count += 1
            return Response(200, {"ok": True})

    with Sink() as sink:
        db = Database(f"sqlite:///{tmp / 'hooks.db'}")
        db.upgrade()
        spec = parse_spec({"slug": "hooks", "name": "Hooks", "task": "classification", "labels": ["a", "b"],
                           "webhooks": [{"url": sink.root_url + "/in", "secret": "bench-secret-0123456789"}]})
        now = datetime.now(UTC)
        started = time.perf_counter()
        with db.session() as s:
            project = create_project(s, spec, "T0BENCH", now)
            for i in range(n):
                webhooks.enqueue(s, project, spec_of(project), "item.completed",
                                 {"item": {"id": f"i{i}", "answer": "a"}}, now)
        enqueued = time.perf_counter() - started
        started = time.perf_counter()
        run = webhooks.deliver_due(db, lambda: datetime.now(UTC), limit=n)
        delivered = time.perf_counter() - started
        assert run.delivered == n == sink.count, (run, sink.count)
        db.dispose()
    return [("webhooks: write events to the outbox", n, enqueued),
            ("webhooks: deliver (claim, sign, POST, record)", n, delivered)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=2_000)
    args = parser.parse_args()
    from bench.export_scale import build

    with tempfile.TemporaryDirectory(prefix="labelbot-pipelines-") as tmp_name:
        tmp = Path(tmp_name)
        info = build(str(tmp / "x.db"), args.items)
        print(f"project: {info['items']:,} items, {info['labels']:,} labels (built in {info['build_seconds']} s)")
        rows = _export_figures(str(tmp / "x.db"), tmp) + _import_figures(tmp, args.items)
        rows += _webhook_figures(tmp, args.events)
    print("| what | rows | seconds | rows/s |")
    print("|---|---:|---:|---:|")
    for name, n, seconds in rows:
        print(f"| {name} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} |")


if __name__ == "__main__":
    main()
