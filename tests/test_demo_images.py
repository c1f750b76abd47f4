"""`labelbot demo --images`: the pictures it draws, and a small end-to-end run labeled by the simulated people."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli.demo import demo
from bot.sandbox.annotators import AnswerKey, read_example
from bot.sandbox.demo import DB_NAME
from bot.sandbox.pictures import SHAPES, write_shape_project
from bot.services.images.files import inspect
from bot.spec import load_spec
from storage.db import Database
from storage.models import Image, ImageUpload, Item, Label


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_shapes_project_is_complete(tmp_path: Path) -> None:
    pictures = write_shape_project(tmp_path, 40)
    spec = load_spec(tmp_path / "project.yml")
    assert spec.label_names == list(SHAPES) and spec.llm.image_detail == "low"
    items, gold = _rows(tmp_path / "items.jsonl"), _rows(tmp_path / "gold.jsonl")
    assert len(items) == 40 and len(gold) == 16 and {g["label"] for g in gold} == set(SHAPES)
    key = AnswerKey.for_pictures(pictures)
    for row in items + gold:
        data = (tmp_path / row["image"]).read_bytes()
        assert inspect(data).mime == "image/png"
        assert key.lookup_picture(hashlib.sha256(data).hexdigest()) is not None
    assert len({hashlib.sha256((tmp_path / r["image"]).read_bytes()).digest() for r in items + gold}) == 56
    assert any(p.hard for p in pictures) and any("text" in r for r in items)


def test_people_see_the_picture_in_the_example(tmp_path: Path) -> None:
    from slack_sdk import WebClient

    from bot.sandbox.fake_slack import FakeSlack
    from bot.sandbox.pictures import shape_image

    data = shape_image("star", 1)
    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        got = client.files_getUploadURLExternal(filename="a.png", length=len(data))
        import urllib.request

        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            urllib.request.Request(got["upload_url"], data=data, method="POST")).read()
        client.files_completeUploadExternal(files=[{"id": got["file_id"]}])
        message = {"ts": "1.0", "blocks": [
            {"type": "context", "block_id": "lb.0", "elements": [{"type": "mrkdwn", "text": "*Shapes*"}]},
            {"type": "image", "block_id": "lb.image", "alt_text": "x", "slack_file": {"id": got["file_id"]}},
            {"type": "actions", "block_id": "lb.controls", "elements": []}]}
        shown = read_example(message, fake)
    assert shown.picture == hashlib.sha256(data).hexdigest() and shown.text == ""


def test_small_image_demo_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # offline: the simulated drafter
    folder = tmp_path / "demo"
    result = CliRunner().invoke(demo, ["--images", "--small", "--dir", str(folder)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = result.output
    assert "project shapes (classification, 4 labels), 30 items, 16 gold items" in out
    assert "passed the quiz" in out and "Quality report: Shapes in pictures" in out
    assert "[image: " in out and "[Show full size]" in out  # the example message shows the upload
    assert "labelbot import shapes" in out

    final = _rows(folder / "labels.jsonl")
    assert len(final) >= 20 and all(r["image"].startswith("images/") for r in final)
    assert {r["label"] for r in final} <= set(SHAPES)
    db = Database(f"sqlite:///{folder / DB_NAME}")
    try:
        with db.read() as s:
            assert s.scalar(select(func.count()).select_from(Image)) == 46
            assert set(s.scalars(select(ImageUpload.status))) == {"ok"}
            assert s.scalar(select(func.count()).select_from(Item).where(Item.image.is_(None))) == 0
            labels = s.execute(select(Label.kind, Label.correct).where(Label.kind == "quiz")).all()
            assert len(labels) >= 24
            # the people look at the pictures: most quiz answers are right
            assert sum(c for _, c in labels) / len(labels) > 0.7
    finally:
        db.dispose()
