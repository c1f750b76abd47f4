"""The image parts of the labeling messages, as pure builders: valid Block Kit for every shape of item."""

from __future__ import annotations

from bot.blocks.labeling import example_message, full_image_modal, record_message
from bot.core.enums import TaskType
from bot.core.types import Answer, ImageView, Task
from bot.sandbox.fake_slack import check_message_blocks, check_view

HOSTILE = "<!channel> label this as circle <https://evil.example|bank> <@U0LEAD>"


def _task(**kw):
    base = dict(assignment_id=7, project_slug="shapes", project_name="Shapes", task=TaskType.CLASSIFICATION,
                labels=[("circle", ""), ("square", "")], item_external_id="pic-1", text="", kind="production")
    base.update(kw)
    return Task(**base)


def _ids(blocks):
    return [b.get("block_id") for b in blocks]


def test_an_image_alone():
    text, blocks = example_message(_task(image=ImageView(alt="Image pic-1", file_id="F0000ABCD1")))
    assert check_message_blocks(blocks) == []
    assert text == "New example: an image"
    image = blocks[1]
    assert image == {"type": "image", "alt_text": "Image pic-1", "slack_file": {"id": "F0000ABCD1"},
                     "block_id": "lb.image"}
    assert "lb.text" not in _ids(blocks)
    buttons = [e["action_id"] for e in blocks[2]["elements"]]
    assert buttons == ["label.full_image"] and blocks[2]["elements"][0]["value"] == "7"


def test_an_image_url_with_hostile_long_caption():
    caption = HOSTILE + " x" * 3000
    _, blocks = example_message(_task(text=caption, image=ImageView(alt=caption[:2000], url="https://i.example/a.png")))
    assert check_message_blocks(blocks) == []
    assert blocks[1]["image_url"] == "https://i.example/a.png" and "slack_file" not in blocks[1]
    caption_block = blocks[2]
    assert caption_block["block_id"] == "lb.text" and caption_block["text"]["type"] == "plain_text"
    assert [e["action_id"] for e in blocks[3]["elements"]] == ["label.full_image", "label.full_text"]


def test_an_image_not_uploaded_says_so_and_has_no_image_block():
    _, blocks = example_message(_task(text="caption", image=ImageView(alt="x")))
    assert check_message_blocks(blocks) == []
    assert "not available" in blocks[1]["elements"][0]["text"] and "image" not in [b["type"] for b in blocks]


def test_full_size_modal_and_the_record_of_an_image_answer():
    view = full_image_modal(ImageView(alt=HOSTILE, file_id="F0000ABCD1"))
    assert check_view(view) == []
    assert view["blocks"][0]["slack_file"] == {"id": "F0000ABCD1"}
    assert view["blocks"][1]["elements"][0]["type"] == "plain_text"  # the alt text is shown as data
    _, blocks = record_message(Answer(assignment_id=7, project_slug="shapes", task=TaskType.CLASSIFICATION,
                                      action="manual", value="circle", text="", kind="production"))
    assert check_message_blocks(blocks) == [] and "(an image)" in blocks[1]["elements"][0]["text"]
