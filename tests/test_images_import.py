"""Image items at import: checked by content (not by name), within the limits, refused by line with
nothing imported; stored once per content; queued for upload to the project's workspace."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from sqlalchemy import func, select

from bot.sandbox.pictures import shape_image
from bot.services.images.files import MAX_IMAGE_BYTES, ImageProblem, for_model, for_slack, inspect, sniff
from bot.services.importer import ImportError_, import_gold, import_items
from bot.services.projects import create_project, get_project
from storage.models import Image, ImageUpload, Item
from tests.conftest import make_spec


def _project(db, clock, **spec):
    with db.session() as s:
        create_project(s, make_spec(**spec), "T0TEST", clock.now())


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(db, fn, path, clock, **kw):
    with db.session() as s:
        return fn(s, get_project(s, "intents"), path, clock.now(), **kw)


def _count(db, model):
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    real = shape_image("circle", 1, size=8)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return real[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + real[33:]


# ------------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"),
                                           ("WEBP", "image/webp")])
def test_formats_are_known_by_content(fmt, mime):
    data = shape_image("square", 3, fmt=fmt)
    info = inspect(data)
    assert (info.mime, info.width, info.height, info.size) == (mime, 192, 192, len(data))
    assert sniff(data) == mime


def test_what_slack_and_the_model_get():
    webp = shape_image("star", 1, fmt="WEBP")
    mime, png = for_slack("image/webp", webp)  # image blocks show PNG, JPEG and GIF only
    assert mime == "image/png" and sniff(png) == "image/png"
    jpeg = shape_image("star", 1, fmt="JPEG")
    assert for_slack("image/jpeg", jpeg) == ("image/jpeg", jpeg)
    assert for_model("image/webp", webp) == ("image/webp", webp)  # vision models read WebP
    from PIL import Image

    frames = [Image.open(io.BytesIO(shape_image(s, 1, fmt="PNG"))).convert("P") for s in ("circle", "square")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    mime, first = for_model("image/gif", out.getvalue())  # an animated GIF: its first frame, as PNG
    assert mime == "image/png" and Image.open(io.BytesIO(first)).size == (192, 192)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"just some text, named .png", "is not a PNG, JPEG, GIF or WebP image (judged by its content"),
        (b"", "is empty"),
        (shape_image("circle", 1)[:300], "looks like a PNG file but cannot be read"),
        (_png_claiming(8_000, 6_000), "is 8000x6000 pixels; images can have at most 40 million pixels"),
        (_png_claiming(20_000, 20_000), "has too many pixels; images can have at most 40 million pixels"),
    ],
)
def test_bad_image_bytes_are_refused_with_the_reason(data, problem):
    with pytest.raises(ImageProblem) as err:
        inspect(data)
    assert problem in str(err.value)


# ------------------------------------------------------------------------------------------------ import


def test_image_items_are_imported_stored_once_and_queued(database, clock, tmp_path):
    _project(database, clock, task="multilabel")
    pics = tmp_path / "pics"
    pics.mkdir()
    same = shape_image("circle", 1)
    (pics / "a.png").write_bytes(same)
    (pics / "copy-of-a.jpg").write_bytes(same)  # the same content under another name (and a wrong extension)
    (pics / "b.webp").write_bytes(shape_image("square", 2, fmt="WEBP"))
    rows = [
        {"id": "i1", "image": "pics/a.png"},
        {"id": "i2", "image": "pics/copy-of-a.jpg", "text": "a caption", "shop": "north"},
        {"id": "i3", "image": "pics/b.webp", "text": "   "},
        {"id": "i4", "image": "https://cdn.example.com/x/photo.jpg"},
        {"id": "t1", "text": "a plain text item"},
    ]
    result = _run(database, import_items, _jsonl(tmp_path / "items.jsonl", rows), clock)
    assert result.inserted == 5
    assert any("2 image(s) will be uploaded to Slack" in w for w in result.warnings)
    with database.read() as s:
        items = {i.external_id: i for i in s.scalars(select(Item))}
        images = s.scalars(select(Image).order_by(Image.id)).all()
        uploads = s.scalars(select(ImageUpload).order_by(ImageUpload.id)).all()
    assert [i.mime for i in images] == ["image/png", "image/webp"]  # one row per content
    assert items["i1"].image_id == items["i2"].image_id == images[0].id
    assert (items["i1"].text, items["i2"].text, items["i3"].text) == ("", "a caption", "")
    assert items["i2"].image == "pics/copy-of-a.jpg" and items["i2"].meta == {"shop": "north"}
    assert (items["i4"].image, items["i4"].image_id) == ("https://cdn.example.com/x/photo.jpg", None)
    assert items["t1"].image is None
    assert [(u.image_id, u.team_id, u.status, u.priority) for u in uploads] == [
        (images[0].id, "T0TEST", "pending", 1), (images[1].id, "T0TEST", "pending", 1)]
    # importing the same file again changes nothing
    again = _run(database, import_items, tmp_path / "items.jsonl", clock)
    assert (again.inserted, again.unchanged) == (0, 5)
    assert _count(database, ImageUpload) == 2


def test_bad_images_are_refused_by_line_and_nothing_is_imported(database, clock, tmp_path):
    _project(database, clock)
    (tmp_path / "ok.png").write_bytes(shape_image("circle", 1))
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "broken.png").write_bytes(shape_image("circle", 2)[:200])
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_IMAGE_BYTES)
    rows = [
        {"id": "1", "image": "ok.png"},
        {"id": "2", "image": "missing.png"},
        {"id": "3", "image": "notes.png"},
        {"id": "4", "image": "broken.png"},
        {"id": "5", "image": "huge.png"},
        {"id": "6", "image": "http://insecure.example.com/a.png"},
        {"id": "7", "image": 42},
        {"id": "8"},
    ]
    with pytest.raises(ImportError_) as err:
        _run(database, import_items, _jsonl(tmp_path / "items.jsonl", rows), clock)
    text = str(err.value)
    assert "nothing was imported; 7 problem(s)" in text
    assert "line 2: field 'image': image file 'missing.png' not found" in text
    assert "line 3: field 'image': image 'notes.png' is not a PNG, JPEG, GIF or WebP image" in text
    assert "line 4: field 'image': image 'broken.png' looks like a PNG file but cannot be read" in text
    assert "line 5: field 'image': image 'huge.png' is 5.0 MB; images can be at most 5.0 MB" in text
    assert "line 6: field 'image': image URLs must start with https://" in text
    assert "line 7: field 'image' must be a file path or an https:// URL" in text
    assert "line 8: field 'text' is missing" in text
    assert _count(database, Item) == 0 and _count(database, Image) == 0 and _count(database, ImageUpload) == 0


@pytest.mark.parametrize("task", ["spans", "rewrite"])
def test_text_tasks_refuse_images(database, clock, tmp_path, task):
    _project(database, clock, task=task, labels=["LOC"] if task == "spans" else [])
    (tmp_path / "a.png").write_bytes(shape_image("circle", 1))
    with pytest.raises(ImportError_) as err:
        _run(database, import_items, _jsonl(tmp_path / "items.jsonl", [{"id": "1", "image": "a.png", "text": "x"}]),
             clock)
    assert f"line 1: field 'image': a {task} project labels text; images work in classification and multilabel" in str(
        err.value)


def test_csv_and_a_changed_image(database, clock, tmp_path):
    _project(database, clock)
    (tmp_path / "a.png").write_bytes(shape_image("circle", 1))
    (tmp_path / "b.png").write_bytes(shape_image("square", 1))
    csv = tmp_path / "items.csv"
    csv.write_text("id,image,text\n1,a.png,\n2,,plain text\n", encoding="utf-8")
    assert _run(database, import_items, csv, clock).inserted == 2
    csv.write_text("id,image,text\n1,b.png,\n2,,plain text\n", encoding="utf-8")
    with pytest.raises(ImportError_) as err:
        _run(database, import_items, csv, clock)
    assert "line 2: id '1' is already imported with different image; use --update" in str(err.value)
    assert _run(database, import_items, csv, clock, update_existing=True).updated == 1
    with database.read() as s:
        item = s.scalar(select(Item).where(Item.external_id == "1"))
        assert s.get(Image, item.image_id).sha256 == inspect(shape_image("square", 1)).sha256


def test_gold_images_go_first_in_the_upload_queue(database, clock, tmp_path):
    _project(database, clock)
    (tmp_path / "a.png").write_bytes(shape_image("circle", 1))
    (tmp_path / "g.png").write_bytes(shape_image("star", 1))
    _run(database, import_items, _jsonl(tmp_path / "items.jsonl", [{"id": "1", "image": "a.png"}]), clock)
    gold = [{"id": "g1", "image": "g.png", "label": "bug"}, {"id": "g2", "image": "a.png", "label": "billing",
                                                             "text": "same picture as item 1"}]
    result = _run(database, import_gold, _jsonl(tmp_path / "gold.jsonl", gold), clock)
    assert result.inserted == 2
    with database.read() as s:
        priorities = dict(s.execute(select(Image.sha256, ImageUpload.priority).join(ImageUpload)).all())
    assert priorities == {inspect(shape_image("circle", 1)).sha256: 0, inspect(shape_image("star", 1)).sha256: 0}


def test_webp_urls_get_a_warning(database, clock, tmp_path):
    _project(database, clock)
    rows = [{"id": "1", "image": "https://img.example.com/a.webp"}, {"id": "2", "image": "https://img.example.com/b"}]
    result = _run(database, import_items, _jsonl(tmp_path / "items.jsonl", rows), clock)
    assert result.inserted == 2
    assert any("1 image URL(s) do not end in .png, .jpg, .jpeg or .gif" in w for w in result.warnings)
