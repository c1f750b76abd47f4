"""Image items in Slack, over the real HTTP wire: uploads ahead of demand (once per image, shared in no
channel, 429s retried, failures logged and their items unserved), examples with an image block that
references the upload, "Show full size", Slack refusing a picture, and the quiz on image gold."""

from __future__ import annotations

import json
import logging

from slack_sdk import WebClient
from sqlalchemy import select

from bot.jobs import upload_images
from bot.sandbox.fake_slack import check_message_blocks
from bot.sandbox.pictures import shape_image
from bot.services import images
from bot.services.images.files import inspect
from bot.services.images.uploads import MAX_ATTEMPTS
from storage.models import Assignment, Image, ImageUpload, Item, Label
from tests.conftest import BOT_TOKEN, make_spec
from tests.helpers import qualify, seed

SHAPES = ["circle", "square", "triangle"]


def _spec(**overrides):
    return make_spec(labels=SHAPES, **overrides)


def _pictures(tmp_path, names):
    """Write pictures; returns their paths relative to tmp_path (where the import file goes)."""
    folder = tmp_path / "pics"
    folder.mkdir(exist_ok=True)
    for name, shape, fmt in names:
        (folder / name).write_bytes(shape_image(shape, name, fmt=fmt))
    return {name: f"pics/{name}" for name, _, _ in names}


def _seed_images(bot, tmp_path, rows, gold=None, **spec):
    """Seed through the real importer, with the import file in tmp_path (image paths are relative to it)."""
    import tests.helpers as helpers

    def _jsonl(rows_):
        path = tmp_path / f"rows-{len(list(tmp_path.glob('rows-*')))}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows_), encoding="utf-8")
        return path

    original = helpers._jsonl
    helpers._jsonl = _jsonl
    try:
        seed(bot.db, _spec(**spec), bot.clock.now(), items=rows, gold=gold)
    finally:
        helpers._jsonl = original


def _client(fake):
    from bot.config import Settings
    from bot.slack.client import make_client

    return make_client(Settings(slack_bot_token=BOT_TOKEN, slack_api_url=fake.api_url))


def _uploads(db):
    with db.read() as s:
        return s.execute(select(ImageUpload.image_id, ImageUpload.status, ImageUpload.file_id, ImageUpload.attempts,
                                ImageUpload.error).order_by(ImageUpload.id)).all()


def _image_blocks(message):
    return [b for b in message["blocks"] if b["type"] == "image"]


# ------------------------------------------------------------------------------------------------ uploads


def test_each_image_is_uploaded_once_in_no_channel_and_webp_becomes_png(sqlite_bot, tmp_path):
    bot = sqlite_bot
    paths = _pictures(tmp_path, [("a.png", "circle", "PNG"), ("b.webp", "square", "WEBP"),
                                 ("c.gif", "triangle", "GIF")])
    rows = [{"id": "1", "image": paths["a.png"]}, {"id": "2", "image": paths["a.png"], "text": "the same picture"},
            {"id": "3", "image": paths["b.webp"]}, {"id": "4", "image": paths["c.gif"]}]
    _seed_images(bot, tmp_path, rows)
    upload_images(bot.deps)
    done = _uploads(bot.db)
    assert [(status, attempts) for _, status, _, attempts, _ in done] == [("ok", 1)] * 3
    assert len(bot.fake.calls_to("files.getUploadURLExternal")) == 3  # three contents, four items
    completes = bot.fake.calls_to("files.completeUploadExternal")
    assert len(completes) == 3 and all("channel_id" not in c and "channels" not in c for c in completes)
    files = {f["id"]: f for f in bot.fake.files()}
    assert all(f["channels"] == [] for f in files.values())  # shared in no channel
    webp_file = files[done[1][2]]
    assert webp_file["content"].startswith(b"\x89PNG") and webp_file["name"].endswith(".png")
    assert files[done[0][2]]["content"] == (tmp_path / "pics" / "a.png").read_bytes()
    # a second pass has nothing to do
    upload_images(bot.deps)
    assert len(bot.fake.calls_to("files.getUploadURLExternal")) == 3


def test_rate_limits_on_every_step_are_retried(sqlite_bot, tmp_path):
    bot = sqlite_bot
    paths = _pictures(tmp_path, [("a.png", "circle", "PNG")])
    _seed_images(bot, tmp_path, [{"id": "1", "image": paths["a.png"]}])
    bot.fake.fail_next("files.getUploadURLExternal", status=429, retry_after=0)
    bot.fake.fail_next("upload", status=429, retry_after=0)
    bot.fake.fail_next("files.completeUploadExternal", status=429, retry_after=0)
    slept = []
    stats = images.upload_pending(bot.db, lambda team: _client(bot.fake), bot.clock.now, sleep=slept.append)
    assert (stats.uploaded, stats.failed, stats.given_up) == (1, 0, 0)
    assert len(bot.fake.calls_to("files.getUploadURLExternal")) == 2
    assert len(bot.fake.upload_posts) == 2 and slept == [0.0]  # Retry-After: 0 honoured
    assert len(bot.fake.calls_to("files.completeUploadExternal")) == 2
    assert _uploads(bot.db)[0][1] == "ok"


def test_a_failed_upload_leaves_its_item_unserved_with_a_clear_log_line(sqlite_bot, tmp_path, caplog):
    bot = sqlite_bot
    paths = _pictures(tmp_path, [("a.png", "circle", "PNG"), ("b.png", "square", "PNG")])
    _seed_images(bot, tmp_path, [{"id": "1", "image": paths["a.png"]}, {"id": "2", "image": paths["b.png"]}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    bot.fake.fail_next("files.getUploadURLExternal", error="missing_scope")  # will not pass by trying again
    bot.fake.fail_next("upload", status=500, times=4)  # the next image: the upload URL keeps failing
    with caplog.at_level(logging.WARNING, logger="labelbot.images"):
        stats = images.upload_pending(bot.db, lambda team: _client(bot.fake), bot.clock.now, sleep=lambda s: None)
    assert (stats.uploaded, stats.failed, stats.given_up) == (0, 1, 1)
    logged = [r.getMessage() for r in caplog.records]
    assert any("image upload given up" in m and "workspace T0TEST" in m and "missing_scope" in m
               and "labelbot images SLUG --retry-failed" in m for m in logged)
    assert any("image upload failed" in m and "HTTP 500 (after 4 tries)" in m and "attempt 1 of 5" in m
               for m in logged)
    rows = _uploads(bot.db)
    assert [r[1] for r in rows] == ["error", "error"]
    # nothing can be served: the person is told the queue is empty, no broken message is posted
    drv = bot.user("U0ANN")
    drv.command("/label")
    bot.fake.wait_for(lambda: any("queue is empty" in r["payload"].get("text", "") for r in bot.fake.responses))
    assert bot.fake.messages(drv.dm) == []
    with bot.db.read() as s:
        assert s.scalars(select(Assignment)).all() == []
    # the transient failure is tried again once its delay has passed, and then the item is served
    bot.clock.advance(seconds=31)
    stats = images.upload_pending(bot.db, lambda team: _client(bot.fake), bot.clock.now)
    assert stats.uploaded == 1
    drv.command("/label")
    bot.fake.wait_for(lambda: _image_blocks(bot.fake.last_message(drv.dm) or {"blocks": []}))


def test_given_up_after_max_attempts_and_retry_failed(sqlite_bot, tmp_path):
    bot = sqlite_bot
    paths = _pictures(tmp_path, [("a.png", "circle", "PNG")])
    _seed_images(bot, tmp_path, [{"id": "1", "image": paths["a.png"]}])
    for _ in range(MAX_ATTEMPTS):
        bot.fake.fail_next("files.completeUploadExternal", error="internal_error")
        images.upload_pending(bot.db, lambda team: _client(bot.fake), bot.clock.now)
        bot.clock.advance(hours=2)
    (_, status, _, attempts, error), = _uploads(bot.db)
    assert (status, attempts) == ("error", MAX_ATTEMPTS) and "internal_error" in error
    assert images.upload_pending(bot.db, lambda team: _client(bot.fake), bot.clock.now).uploaded == 0
    with bot.db.read() as s:
        project_id = s.scalar(select(Item.project_id))
    assert images.retry_failed(bot.db, project_id, "T0TEST") == (1, 0)
    assert images.upload_pending(bot.db, lambda team: _client(bot.fake), bot.clock.now).uploaded == 1


def test_no_token_for_the_workspace_leaves_uploads_queued(sqlite_db, clock, tmp_path):
    from bot.services.importer import import_items
    from bot.services.projects import create_project

    (tmp_path / "a.png").write_bytes(shape_image("circle", 1))
    (tmp_path / "items.jsonl").write_text('{"id": "1", "image": "a.png"}\n', encoding="utf-8")
    with sqlite_db.session() as s:
        import_items(s, create_project(s, _spec(), "T0OTHER", clock.now()), tmp_path / "items.jsonl", clock.now())
    stats = images.upload_pending(sqlite_db, lambda team: None, clock.now)
    assert (stats.skipped, stats.capped) == (1, False)
    assert _uploads(sqlite_db)[0][1:4] == ("pending", None, 0)


# ------------------------------------------------------------------------------------------------ serving


def test_examples_show_the_uploaded_image_and_full_size_opens_it(bot, tmp_path):
    paths = _pictures(tmp_path, [("a.png", "circle", "PNG"), ("b.jpg", "square", "JPEG")])
    long_caption = "A caption. " * 300
    _seed_images(bot, tmp_path, [{"id": "p1", "image": paths["a.png"]},
                                 {"id": "p2", "image": paths["b.jpg"], "text": long_caption},
                                 {"id": "p3", "image": "https://images.example.com/p3.png", "text": "<!channel> hi"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")  # nothing is uploaded yet: only the URL item can be served
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(drv.dm))
    (block,) = _image_blocks(msg)
    assert block["image_url"] == "https://images.example.com/p3.png" and "slack_file" not in block
    assert block["alt_text"] == "<!channel> hi"
    assert check_message_blocks(msg["blocks"]) == []
    drv.click(msg, "label.choose:0")
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(drv.dm) or {}).get("text", ""))
    bot.deps.wait_idle()

    upload_images(bot.deps)
    with bot.db.read() as s:
        file_of = {sha: fid for sha, fid in s.execute(
            select(Image.sha256, ImageUpload.file_id).join(ImageUpload, ImageUpload.image_id == Image.id))}
    drv.command("/label")
    msg = bot.fake.wait_for(lambda: _image_blocks(bot.fake.last_message(drv.dm) or {"blocks": []})
                            and bot.fake.last_message(drv.dm))
    (block,) = _image_blocks(msg)
    assert block["slack_file"] == {"id": file_of[inspect((tmp_path / paths["a.png"]).read_bytes()).sha256]}
    assert block["alt_text"] == "Image p1"  # no text: the id
    assert not any(b.get("block_id") == "lb.text" for b in msg["blocks"])  # an image alone
    assert check_message_blocks(msg["blocks"]) == []
    assert msg["text"] == "New example: an image"
    drv.click(msg, "label.full_image")
    view = bot.fake.wait_for(lambda: bot.fake.views_open("U0ANN") and bot.fake.views_open("U0ANN")[-1])
    assert view["blocks"][0]["type"] == "image" and view["blocks"][0]["slack_file"] == block["slack_file"]
    drv.click(msg, "label.choose:0")
    msg = bot.fake.wait_for(lambda: len(bot.fake.messages(drv.dm)) >= 4 and bot.fake.last_message(drv.dm))
    (block,) = _image_blocks(msg)
    assert len(block["alt_text"]) == 2000  # the long caption, cut to Slack's limit
    caption = next(b for b in msg["blocks"] if b.get("block_id") == "lb.text")
    assert len(caption["text"]["text"]) <= 3000
    assert {e["action_id"] for e in next(b for b in msg["blocks"] if b["block_id"] == "lb.image_actions")["elements"]} \
        == {"label.full_image", "label.full_text"}
    drv.click(msg, "label.choose:1")
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(drv.dm) or {}).get("text", ""))
    records = [m for m in bot.fake.messages(drv.dm) if m["blocks"] and m["blocks"][0].get("block_id") == "lb.record"]
    assert any("(an image)" in json.dumps(m["blocks"]) for m in records)
    with bot.db.read() as s:
        assert s.scalars(select(Label.value).order_by(Label.id)).all() == ["circle", "circle", "square"]


def test_a_picture_slack_refuses_is_set_aside_and_the_next_one_served(bot, tmp_path):
    paths = _pictures(tmp_path, [("a.png", "circle", "PNG"), ("b.png", "square", "PNG")])
    _seed_images(bot, tmp_path, [{"id": "p1", "image": paths["a.png"]}, {"id": "p2", "image": paths["b.png"]},
                                 {"id": "u1", "image": "https://images.example.com/gone.png"}],
                 redundancy=1)
    upload_images(bot.deps)
    first_file = _uploads(bot.db)[0][2]
    bot.fake.delete_file(first_file)  # an admin deleted the uploaded file
    bot.fake.fail_image_url("https://images.example.com/gone.png")  # Slack cannot download this one
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    msg = bot.fake.wait_for(lambda: _image_blocks(bot.fake.last_message(drv.dm) or {"blocks": []})
                            and bot.fake.last_message(drv.dm))
    assert any("could not show the picture" in m["text"] for m in bot.fake.messages(drv.dm))
    assert _image_blocks(msg)[0]["slack_file"]["id"] == _uploads(bot.db)[1][2]
    bot.deps.wait_idle()
    with bot.db.read() as s:
        cancelled = s.scalars(select(Assignment).where(Assignment.status == "cancelled")).all()
        assert len(cancelled) == 1
        assert s.scalar(select(Item.slots).where(Item.external_id == "p1")) == 1  # back in the queue
    assert _uploads(bot.db)[0][1:3] == ("pending", None)  # uploaded again by the next pass
    drv.click(msg, "label.choose:1")
    # next comes the URL Slack cannot download: set aside for good; the deleted file waits for its re-upload
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(drv.dm) or {}).get("text", ""))
    assert sum("could not show the picture" in m["text"] for m in bot.fake.messages(drv.dm)) == 2
    bot.deps.wait_idle()
    with bot.db.read() as s:
        aside = s.scalar(select(Item).where(Item.external_id == "u1"))
    assert "downloading image failed" in aside.image_error
    upload_images(bot.deps)
    qualify(bot.db, "intents", "U0ANN2", bot.clock.now())
    other = bot.user("U0ANN2")  # an example once served to someone is not served to them again
    other.command("/label")
    msg = bot.fake.wait_for(lambda: (m := bot.fake.last_message(other.dm)) and _image_blocks(m) and m)
    new_file = _image_blocks(msg)[0]["slack_file"]["id"]
    assert new_file != first_file and bot.fake.file(new_file)["content"] == bot.fake.file(first_file)["content"]
    status = _status(bot)
    assert status.set_aside == 1 and status.uploads == {"ok": 2}
    assert "1 URL item(s) set aside: Slack could not show their image." in status.lines()


def _status(bot):
    from bot.services.projects import get_project

    with bot.db.read() as s:
        return images.image_status(s, get_project(s, "intents"))


def test_quiz_and_hidden_checks_on_image_gold(bot, tmp_path):
    paths = _pictures(tmp_path, [(f"g{i}.png", SHAPES[i % 3], "PNG") for i in range(4)] + [("x.png", "circle", "PNG")])
    gold = [{"id": f"g{i}", "image": paths[f"g{i}.png"], "label": SHAPES[i % 3], "explanation": "Look at the corners."}
            for i in range(4)]
    _seed_images(bot, tmp_path, [{"id": "x", "image": paths["x.png"]}], gold=gold)
    drv = bot.user("U0NEW")
    drv.command("/label", "quiz")
    bot.fake.wait_for(lambda: any("still being uploaded" in r["payload"].get("text", "") for r in bot.fake.responses))
    images.upload_pending(bot.db, bot.deps.workspace_client, bot.clock.now, limit=4)
    with bot.db.read() as s:  # the gold pictures go first: new people take the quiz before they label
        done = s.execute(select(ImageUpload.priority, ImageUpload.status).order_by(ImageUpload.id)).all()
    assert sorted(done) == [(0, "ok")] * 4 + [(1, "pending")]
    drv.command("/label", "quiz")
    for n in range(4):
        msg = bot.fake.wait_for(lambda n=n: (m := bot.fake.last_message(drv.dm)) and f"question {n + 1} of 4"
                                in json.dumps(m["blocks"]) and m)
        (block,) = _image_blocks(msg)
        assert check_message_blocks(msg["blocks"]) == [] and "slack_file" in block
        shape = _truth_of(bot, block)
        drv.click(msg, f"label.choose:{SHAPES.index(shape)}")
    bot.fake.wait_for(lambda: "Quiz finished" in json.dumps(bot.fake.last_message(drv.dm)["blocks"]))
    assert "you are qualified" in bot.fake.last_message(drv.dm)["text"]


def _truth_of(bot, block):
    """What the picture shows, read from the uploaded file's bytes (as a person looks at it)."""
    content = bot.fake.file(block["slack_file"]["id"])["content"]
    for name in (bot.fake.files()):
        if name["content"] == content:
            break
    for shape in SHAPES:
        for i in range(4):
            if shape_image(shape, f"g{i}.png") == content:
                return shape
    raise AssertionError("unknown picture")


def test_upload_job_is_scheduled_only_with_a_slack_client():
    from bot.config import Settings
    from bot.deps import Deps
    from bot.jobs import JOBS

    job = next(j for j in JOBS if j.id == "images.upload")
    assert job.when(Deps(settings=Settings(), db=None, client=WebClient(token="x"))) is True  # type: ignore[arg-type]
    assert job.when(Deps(settings=Settings(), db=None)) is False  # type: ignore[arg-type]


def test_labelbot_images_shows_uploads_and_fails_clearly(sqlite_bot, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from bot.cli import load_commands

    bot = sqlite_bot
    paths = _pictures(tmp_path, [("a.png", "circle", "PNG"), ("b.png", "square", "PNG")])
    _seed_images(bot, tmp_path, [{"id": "1", "image": paths["a.png"]}, {"id": "2", "image": paths["b.png"]},
                                 {"id": "3", "image": "https://img.example.com/c.png"}])
    monkeypatch.setenv("DATABASE_URL", bot.db.url)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    cli = load_commands()
    out = CliRunner().invoke(cli, ["images", "intents"])
    assert out.exit_code == 0, out.output
    assert "2 item(s) with an image file (2 distinct image(s)), 1 with an image URL" in out.output
    assert "Image files in Slack: 0 uploaded, 2 waiting, 0 uploading, 0 failed." in out.output
    out = CliRunner().invoke(cli, ["images", "intents", "--upload"])
    assert out.exit_code == 2 and "Set SLACK_BOT_TOKEN" in out.output
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", bot.fake.api_url)
    bot.fake.fail_next("files.getUploadURLExternal", error="file_uploads_disabled")
    out = CliRunner().invoke(cli, ["images", "intents", "--upload"])
    assert out.exit_code == 0, out.output
    assert "1 image(s) uploaded, 1 given up." in out.output
    assert "1 image(s): files.getUploadURLExternal: Slack answered file_uploads_disabled" in out.output
    out = CliRunner().invoke(cli, ["images", "intents", "--retry-failed", "--upload"])
    assert "1 failed upload(s) queued again; 0 URL item(s) served again." in out.output
    assert "Image files in Slack: 2 uploaded, 0 waiting, 0 uploading, 0 failed." in out.output
    assert CliRunner().invoke(cli, ["images", "nope"]).exit_code == 2
