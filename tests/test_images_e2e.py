"""An image project end to end over the real HTTP wire: import (bad files refused by line), uploads once
each, examples showing the upload, drafts from a vision model (the request carries the image part),
annotators labeling, hidden checks on image gold, and exports keeping each image reference."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.jobs import upload_images
from bot.sandbox.fake_openai import FakeOpenAI, decode_data_url, image_parts
from bot.sandbox.fake_slack import check_message_blocks
from bot.sandbox.pictures import shape_image
from bot.services.drafting import draft_stats, prefetch_once
from bot.services.export import ExportOptions, export_project
from bot.services.importer import ImportError_, import_gold, import_items
from bot.services.projects import create_project, get_project, spec_of
from storage.models import Assignment, Draft, ImageUpload, Item, Label
from tests.conftest import Bot, make_spec, start_bot
from tests.helpers import qualify

SHAPES = ["circle", "square", "triangle"]
SEEN: dict[str, str] = {}  # sha256 of a picture -> its shape: what the fake vision model "sees"


def picture(shape: str, name: str, fmt: str = "PNG") -> bytes:
    data = shape_image(shape, name, fmt=fmt)
    SEEN[hashlib.sha256(data).hexdigest()] = shape
    return data


def vision_model(body: dict[str, Any]) -> dict[str, Any]:
    """Answers with the shape it sees in the image part (the stored file, sent as a data: URL)."""
    parts = image_parts(body)
    if not parts:
        return {"label": "circle", "confidence": 0.5}
    url = parts[0]["url"]
    seen = SEEN.get(hashlib.sha256(decode_data_url(url)).hexdigest()) if url.startswith("data:") else "square"
    return {"label": seen or "circle", "confidence": 0.9}


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(responder=vision_model) as server:
        yield server


@pytest.fixture
def vision_bot(database, fake_slack, clock, openai_server) -> Iterator[Bot]:
    with start_bot(database, fake_slack, clock, openai_api_key="sk-test",
                   openai_base_url=openai_server.base_url) as running:
        yield running


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _image_block(message):
    (block,) = [b for b in message["blocks"] if b["type"] == "image"]
    return block


def test_image_project_end_to_end(vision_bot, openai_server, tmp_path):
    bot = vision_bot
    spec = make_spec(labels=SHAPES, redundancy=2, gold_rate=0, llm={"model": "vision-model", "few_shot": 0})
    pics = tmp_path / "pics"
    pics.mkdir()
    for name, shape, fmt in [("a.png", "circle", "PNG"), ("b.jpg", "square", "JPEG"), ("c.webp", "triangle", "WEBP")]:
        (pics / name).write_bytes(picture(shape, name, fmt))
    (pics / "d.png").write_text("this is not a picture")
    with bot.db.session() as s:
        create_project(s, spec, "T0TEST", bot.clock.now())
    rows = [{"id": "a", "image": "pics/a.png"}, {"id": "b", "image": "pics/b.jpg", "text": "Seen at the dock"},
            {"id": "c", "image": "pics/c.webp"}, {"id": "a-again", "image": "pics/a.png"},
            {"id": "d", "image": "pics/d.png"}]
    # a bad file is refused by line, and nothing is imported
    with pytest.raises(ImportError_) as err, bot.db.session() as s:
        import_items(s, get_project(s, "intents"), _write(tmp_path / "items.jsonl", rows), bot.clock.now())
    assert "line 5: field 'image': image 'pics/d.png' is not a PNG, JPEG, GIF or WebP image" in str(err.value)
    with bot.db.read() as s:
        assert s.scalars(select(Item)).all() == []
    with bot.db.session() as s:
        import_items(s, get_project(s, "intents"), _write(tmp_path / "items.jsonl", rows[:4]), bot.clock.now())

    # images are uploaded once each, ahead of demand; drafts come from the vision model
    upload_images(bot.deps)
    assert len(bot.fake.calls_to("files.getUploadURLExternal")) == 3
    stats = prefetch_once(bot.deps)["intents"]
    assert stats.ok == 4
    requests = openai_server.chat_requests()
    assert len(requests) == 4
    for body in requests:
        (part,) = image_parts(body)
        assert part["detail"] == "auto" and part["url"].startswith("data:image/")
        content = body["messages"][1]["content"]
        assert content[0]["type"] == "text" and content[0]["text"].startswith("Label the attached image.")
    sent = {decode_data_url(image_parts(b)[0]["url"]) for b in requests}
    assert sent == {(pics / n).read_bytes() for n in ("a.png", "b.jpg", "c.webp")}  # WebP as it is: models read it
    dock = next(b for b in requests if "Seen at the dock" in json.dumps(b))
    assert "<text>\nSeen at the dock\n</text>" in dock["messages"][1]["content"][0]["text"]
    with bot.db.read() as s:
        drafts = dict(s.execute(select(Item.external_id, Draft.value).join(Draft, Draft.item_id == Item.id)).all())
    assert drafts == {"a": "circle", "b": "square", "c": "triangle", "a-again": "circle"}

    # two annotators label every item: each example shows the uploaded picture and the draft
    with bot.db.read() as s:
        file_ids = set(s.scalars(select(ImageUpload.file_id)))
    for user in ("U0ANN", "U0BOB"):
        qualify(bot.db, "intents", user, bot.clock.now())
        drv = bot.user(user)
        drv.command("/label")
        for n in range(4):
            msg = bot.fake.wait_for(lambda n=n, drv=drv: len(bot.fake.messages(drv.dm)) > n
                                    and bot.fake.last_message(drv.dm))
            assert check_message_blocks(msg["blocks"]) == []
            assert _image_block(msg)["slack_file"]["id"] in file_ids
            assert any(b.get("block_id") == "lb.draft" for b in msg["blocks"])
            drv.click(msg, "label.accept")
        bot.fake.wait_for(lambda drv=drv: "queue is empty" in (bot.fake.last_message(drv.dm) or {}).get("text", ""))
    bot.deps.wait_idle()
    with bot.db.read() as s:
        assert {st for (st,) in s.execute(select(Item.status))} == {"complete"}
        assert len(s.scalars(select(Label)).all()) == 8

    # the exports keep each image reference as imported
    final = tmp_path / "final.jsonl"
    export_project(bot.db, "intents", final, ExportOptions(), now=bot.clock.now())
    got = {r["id"]: (r["image"], r["label"], r["input"]) for r in map(json.loads, final.read_text().splitlines())}
    assert got == {"a": ("pics/a.png", "circle", ""), "b": ("pics/b.jpg", "square", "Seen at the dock"),
                   "c": ("pics/c.webp", "triangle", ""), "a-again": ("pics/a.png", "circle", "")}
    table = tmp_path / "final.csv"
    export_project(bot.db, "intents", table, ExportOptions(fmt="csv"), now=bot.clock.now())
    with table.open(newline="", encoding="utf-8") as fh:
        rows_ = list(csv.DictReader(fh))
    assert list(rows_[0])[:3] == ["id", "text", "image"] and rows_[1]["image"] == "pics/b.jpg"
    raw = tmp_path / "raw.parquet"
    export_project(bot.db, "intents", raw, ExportOptions(fmt="parquet", raw=True), now=bot.clock.now())
    import pyarrow.parquet as pq

    assert set(pq.read_table(raw).column("image").to_pylist()) == {"pics/a.png", "pics/b.jpg", "pics/c.webp"}
    tune = tmp_path / "tune.jsonl"
    export_project(bot.db, "intents", tune, ExportOptions(fmt="openai"), now=bot.clock.now())
    lines = [json.loads(line) for line in tune.read_text().splitlines()]
    user = lines[1]["messages"][1]["content"]  # item b: its text and its picture
    assert user[0] == {"type": "text", "text": "Seen at the dock"}
    assert decode_data_url(user[1]["image_url"]["url"]) == (pics / "b.jpg").read_bytes()
    assert lines[1]["messages"][2]["content"] == "square"

    # Hugging Face: an Image feature with the stored file's bytes, the reference beside it
    datasets = pytest.importorskip("datasets", reason="the hf export needs the [hf] extra")
    hf_dir = tmp_path / "hf"
    export_project(bot.db, "intents", hf_dir, ExportOptions(fmt="hf"), now=bot.clock.now())
    train = datasets.load_from_disk(str(hf_dir))["train"]
    assert isinstance(train.features["image"], datasets.Image)
    by_id = {r["id"]: r for r in train.cast_column("image", datasets.Image(decode=False))}
    assert by_id["b"]["image"]["bytes"] == (pics / "b.jpg").read_bytes() and by_id["b"]["image_ref"] == "pics/b.jpg"


def test_text_projects_keep_their_export_columns(sqlite_bot, tmp_path):
    from tests.helpers import seed

    seed(sqlite_bot.db, make_spec(), sqlite_bot.clock.now(), items=[{"id": "t1", "text": "hello"}])
    out = tmp_path / "raw.csv"
    export_project(sqlite_bot.db, "intents", out, ExportOptions(fmt="csv", raw=True), now=sqlite_bot.clock.now())
    assert "image" not in out.read_text().splitlines()[0]


def test_a_text_only_model_refuses_images_and_the_item_is_served_without_a_draft(database, fake_slack, clock,
                                                                                    tmp_path):
    with FakeOpenAI(responder=vision_model, vision=False) as server, start_bot(
        database, fake_slack, clock, openai_api_key="sk-test", openai_base_url=server.base_url
    ) as bot:
        spec = make_spec(labels=SHAPES, redundancy=1, llm={"model": "text-model", "few_shot": 0, "concurrency": 1})
        (tmp_path / "a.png").write_bytes(picture("circle", "ra"))
        (tmp_path / "b.png").write_bytes(picture("square", "rb"))
        with bot.db.session() as s:
            project = create_project(s, spec, "T0TEST", bot.clock.now())
            import_items(s, project, _write(tmp_path / "items.jsonl", [
                {"id": "a", "image": "a.png"}, {"id": "b", "image": "b.png"}, {"id": "t", "text": "a round thing"}]),
                bot.clock.now())
        upload_images(bot.deps)
        stats = prefetch_once(bot.deps)["intents"]
        assert (stats.ok, stats.errors) == (1, {"image_refused": 2})
        assert not stats.paused  # a refusal is not an outage: text items keep their drafts
        sent = server.chat_requests()
        assert len(sent) == 2  # one image refused, then remembered: the second image is not sent at all
        assert sum(bool(image_parts(b)) for b in sent) == 1
        with bot.db.read() as s:
            errors = s.execute(select(Draft.error_kind, Draft.error).where(Draft.status == "error")).all()
            assert {k for k, _ in errors} == {"image_refused"}
            assert any("image_url is only supported by certain models" in e for _, e in errors)
            report = draft_stats(s, get_project(s, "intents").id, bot.clock.now() - timedelta(days=1),
                                 bot.clock.now() + timedelta(days=1), spec_of(get_project(s, "intents")))
        assert report["errors"] == {"image_refused": 2}
        qualify(bot.db, "intents", "U0ANN", bot.clock.now())
        drv = bot.user("U0ANN")
        drv.command("/label")
        msg = bot.fake.wait_for(lambda: bot.fake.last_message(drv.dm))
        assert _image_block(msg) and "No draft is available for this example" in json.dumps(msg["blocks"])


def test_hidden_checks_on_image_gold(sqlite_bot, tmp_path):
    bot = sqlite_bot
    spec = make_spec(labels=SHAPES, redundancy=1, gold_rate=0.5, blind_every=0, llm={"enabled": False},
                     honeypot={"min_checks": 50})
    for i in range(6):
        (tmp_path / f"i{i}.png").write_bytes(picture(SHAPES[i % 3], f"i{i}"))
        (tmp_path / f"g{i}.png").write_bytes(picture(SHAPES[i % 3], f"g{i}"))
    with bot.db.session() as s:
        project = create_project(s, spec, "T0TEST", bot.clock.now())
        import_items(s, project, _write(tmp_path / "items.jsonl", [{"id": f"i{i}", "image": f"i{i}.png"}
                                                                   for i in range(6)]), bot.clock.now())
        import_gold(s, project, _write(tmp_path / "gold.jsonl", [{"id": f"g{i}", "image": f"g{i}.png",
                                                                  "label": SHAPES[i % 3]} for i in range(6)]),
                    bot.clock.now())
    upload_images(bot.deps)
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    for n in range(8):
        msg = bot.fake.wait_for(lambda n=n: len(bot.fake.messages(drv.dm)) > n and bot.fake.last_message(drv.dm))
        if "lb.controls" not in json.dumps(msg["blocks"]):
            break
        content = bot.fake.file(_image_block(msg)["slack_file"]["id"])["content"]
        shape = SEEN[hashlib.sha256(content).hexdigest()]  # the annotator looks at the picture
        drv.click(msg, f"label.choose:{SHAPES.index(shape)}")
    bot.deps.wait_idle()
    with bot.db.read() as s:
        checks = s.execute(select(Label.correct).join(Assignment, Assignment.id == Label.assignment_id)
                           .where(Assignment.kind == "honeypot")).scalars().all()
    assert checks and all(c == 1.0 for c in checks)
