"""Image items: import, serving, upload and drafting-request figures.

    .venv/bin/python bench/images.py [--small 300] [--photos 60] [--items 20000] [--serves 200]
                                     [--uploads 200] [--postgres URL]

1. Import: `--small` distinct 192x192 PNGs (shapes) and `--photos` distinct 1024x768 JPEGs (noise,
   so they do not compress away) written to disk and imported with `import_items` (checked by content,
   decoded, hashed, stored); then the same file again (a no-op: files are checked again, nothing stored).
2. Serving: the claim of the next example (`next_task`, one per fresh member, so each takes the
   production path) on a project of `--items` text items, then `--items` image items whose pictures are
   all uploaded, then the same with the head of the queue (its first 10%, fresh items) still waiting for
   their upload (the claim skips them). Items are inserted in bulk; images are 500 rows reused across
   items; the cases take turns, on freshly ANALYZEd tables.
3. Uploads: `--uploads` pictures to the stand-in Slack on 127.0.0.1 through the real Web API client,
   4 at a time: the overhead of the three-step flow, not Slack's speed (Slack's files.* methods are
   Tier 4, about 100+ per minute per workspace: that is the real bound).
4. A drafting request's size on the wire for a small PNG and a photo (the image travels as a data: URL).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, text

from bot.core.enums import ItemStatus, UploadStatus
from bot.sandbox.pictures import shape_image
from bot.services.importer import import_items
from bot.services.labeling import next_task
from bot.services.projects import create_project, ensure_member, get_project
from bot.spec import parse_spec
from storage.db import Database
from storage.models import Image, ImageUpload, Item

TEAM = "T0BENCH"


def _now() -> datetime:
    return datetime(2026, 1, 5, 9, tzinfo=UTC)


def _spec(slug: str) -> object:
    return parse_spec({"slug": slug, "name": slug, "task": "classification", "labels": ["a", "b", "c"],
                       "blind_every": 0, "gold_rate": 0, "llm": {"enabled": False}})


def photo(i: int, width: int = 1024, height: int = 768) -> bytes:
    from PIL import Image as PILImage

    rng = random.Random(i)
    small = PILImage.frombytes("RGB", (64, 48), bytes(rng.randrange(256) for _ in range(64 * 48 * 3)))
    out = io.BytesIO()
    small.resize((width, height)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def bench_import(url: str, folder: Path, n_small: int, n_photos: int) -> None:
    pics = folder / "pics"
    pics.mkdir()
    rows = []
    sizes = []
    for i in range(n_small):
        data = shape_image(("circle", "square", "triangle", "star")[i % 4], f"b{i}")
        (pics / f"s{i}.png").write_bytes(data)
        rows.append({"id": f"s{i}", "image": f"pics/s{i}.png"})
        sizes.append(len(data))
    for i in range(n_photos):
        data = photo(i)
        (pics / f"p{i}.jpg").write_bytes(data)
        rows.append({"id": f"p{i}", "image": f"pics/p{i}.jpg"})
        sizes.append(len(data))
    path = folder / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    db = Database(url)
    db.upgrade()
    with db.session() as s:
        create_project(s, _spec("imp"), TEAM, _now())
    for label in ("import", "re-import (no-op)"):
        start = time.perf_counter()
        with db.session() as s:
            result = import_items(s, get_project(s, "imp"), path, _now())
        took = time.perf_counter() - start
        print(f"  {label}: {len(rows)} images ({n_small} PNG 192px, {n_photos} JPEG 1024x768; "
              f"{sum(sizes) / 1e6:.1f} MB) in {took:.2f} s = {len(rows) / took:.0f} images/s "
              f"({result.inserted} new)")
    db.dispose()


def _fill(db: Database, slug: str, n: int, images: int | None, waiting_share: float = 0.0) -> None:
    """A project with n open items (text, or image items cycling over `images` image rows)."""
    with db.session() as s:
        project = create_project(s, _spec(slug), TEAM, _now())
        image_ids: list[int] = []
        if images:
            first = s.scalar(select(Image.id).order_by(Image.id.desc()).limit(1)) or 0
            s.execute(insert(Image), [{"sha256": f"{slug}{i:060d}"[-64:], "mime": "image/png", "width": 1, "height": 1,
                                       "size": 1, "data": b"x", "created_at": _now()} for i in range(images)])
            image_ids = list(s.scalars(select(Image.id).where(Image.id > first).order_by(Image.id)))
        n_waiting = int(n * waiting_share)
        rows = []
        for i in range(n):
            row = {"project_id": project.id, "external_id": f"{slug}-{i}", "text": "" if images else f"text {i}",
                   "meta": None, "status": ItemStatus.OPEN.value, "slots": 3, "labels_done": 0, "is_gold": False,
                   "created_at": _now(), "updated_at": _now()}
            if images:  # the first `n_waiting` items (the head of the queue) have pictures still waiting
                waiting_image = i < n_waiting
                row.update(image=f"p/{i}.png",
                           image_id=image_ids[-1] if waiting_image else image_ids[i % (len(image_ids) - 1)])
            rows.append(row)
        for start in range(0, n, 5000):
            s.execute(insert(Item), rows[start : start + 5000])
        if images:
            waiting = {image_ids[-1]} if n_waiting else set()
            pending, ok = UploadStatus.PENDING.value, UploadStatus.OK.value
            s.execute(insert(ImageUpload), [
                {"image_id": i, "team_id": TEAM, "status": pending if i in waiting else ok, "priority": 1,
                 "file_id": None if i in waiting else f"F{i:09d}", "attempts": 0, "created_at": _now()}
                for i in image_ids])
    with db.engine.connect() as conn:  # fresh statistics, as a live database has them
        conn.execute(text("ANALYZE"))
        conn.commit()


def bench_serving(url: str, n: int, serves: int) -> None:
    db = Database(url)
    db.upgrade()
    cases = [("text", None, 0.0), ("images, all uploaded", 500, 0.0), ("images, 10% waiting", 500, 0.1)]
    for i, (_, images, waiting) in enumerate(cases):
        _fill(db, f"serve{i}", n, images, waiting)
    times: list[list[float]] = [[] for _ in cases]
    for k in range(serves):  # the cases take turns, so that they see the same machine
        for i, (_, images, _) in enumerate(cases):
            with db.session() as s:
                project = get_project(s, f"serve{i}")
                member = ensure_member(s, project, f"U{k:08d}", _now())
                member.state = "qualified"
                s.flush()
                start = time.perf_counter()
                task = next_task(s, project, member, _now(), db.dialect)
                times[i].append((time.perf_counter() - start) * 1000)
                assert task is not None and (images is None or (task.image is not None and task.image.ready))
    for (label, _, _), spent in zip(cases, times, strict=True):
        spent.sort()
        print(f"  {label:<22} {n} items: next_task median {statistics.median(spent):.2f} ms, "
              f"p95 {spent[int(len(spent) * 0.95)]:.2f} ms ({serves} serves)")
    db.dispose()


def bench_uploads(url: str, n: int) -> None:
    from bot.config import Settings
    from bot.sandbox.fake_slack import FakeSlack
    from bot.services.images import upload_pending
    from bot.slack.client import make_client

    db = Database(url)
    db.upgrade()
    with db.session() as s:
        s.execute(insert(Image), [{"sha256": f"up{i:062d}", "mime": "image/png", "width": 192, "height": 192,
                                   "size": 0, "data": shape_image("star", f"u{i}"), "created_at": _now()}
                                  for i in range(n)])
        ids = list(s.scalars(select(Image.id)))
        s.execute(insert(ImageUpload), [{"image_id": i, "team_id": TEAM, "status": "pending", "priority": 1,
                                         "attempts": 0, "created_at": _now()} for i in ids])
    with FakeSlack(bot_token="xoxb-bench", team_id=TEAM) as fake:
        client = make_client(Settings(slack_bot_token="xoxb-bench", slack_api_url=fake.api_url))
        start = time.perf_counter()
        done = 0
        while True:
            stats = upload_pending(db, lambda team: client, _now, limit=32, concurrency=4)
            done += stats.uploaded
            if not stats.capped:
                break
        took = time.perf_counter() - start
    print(f"  {done} uploads (3 HTTP calls each) in {took:.2f} s = {done / took:.0f} images/s, 4 at a time")
    db.dispose()


def bench_request_size() -> None:
    from bot.config import Settings
    from bot.services.drafting.clients import Drafter
    from bot.services.drafting.prompt import build_prompt
    from bot.services.images.files import data_url

    spec = parse_spec({"slug": "x", "name": "x", "task": "classification", "labels": ["a", "b", "c"]})
    drafter = Drafter(Settings(openai_api_key="sk-x"))
    prompt = build_prompt(spec, "m")
    text_only = len(json.dumps(drafter.request_json(prompt, spec, "some text")))
    for label, mime, data in (("192px PNG", "image/png", shape_image("star", 1)),
                              ("1024x768 JPEG", "image/jpeg", photo(1))):
        body = drafter.request_json(prompt, spec, "", image=data_url(mime, data))
        size = len(json.dumps(body))
        print(f"  {label}: file {len(data) / 1024:.0f} KB, request {size / 1024:.0f} KB "
              f"(a text item's: {text_only / 1024:.1f} KB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--serves", type=int, default=200)
    ap.add_argument("--uploads", type=int, default=200)
    ap.add_argument("--postgres")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        backends = [("SQLite", lambda name: f"sqlite:///{folder / name}.db")]
        if args.postgres:
            backends.append(("PostgreSQL", lambda name: _fresh_pg(args.postgres, name)))
        for backend, url_for in backends:
            print(f"{backend}")
            sub = folder / f"imp-{backend}"
            sub.mkdir()
            bench_import(url_for("imp"), sub, args.small, args.photos)
            bench_serving(url_for("serve"), args.items, args.serves)
            bench_uploads(url_for("up"), args.uploads)
    print("Drafting requests")
    bench_request_size()


def _fresh_pg(base: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    schema = f"bench_{name}_{int(time.time())}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    main()
