"""The stand-ins' image support: FakeSlack's checks of image blocks (as Slack answers them) and the
upload flow's fault injection; FakeOpenAI's image content parts, through the real clients."""

from __future__ import annotations

import base64

import openai
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sandbox.fake_openai import FakeOpenAI
from bot.sandbox.fake_slack import FakeSlack, check_message_blocks, check_view
from bot.sandbox.pictures import shape_image


@pytest.fixture
def fake():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake):
    return WebClient(token="xoxb-test", base_url=fake.api_url)


def _upload(client, data: bytes, name: str = "a.png") -> str:
    got = client.files_getUploadURLExternal(filename=name, length=len(data))
    import urllib.request

    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        urllib.request.Request(got["upload_url"], data=data, method="POST")).read()
    client.files_completeUploadExternal(files=[{"id": got["file_id"], "title": "t"}])
    return got["file_id"]


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ({"type": "image", "alt_text": "x"}, "must provide either image_url or slack_file [json-pointer:/blocks/0]"),
        ({"type": "image", "alt_text": "x", "image_url": "https://a.example/x.png", "slack_file": {"id": "F12345678"}},
         "must provide only one of image_url or slack_file"),
        ({"type": "image", "alt_text": "x", "slack_file": {"id": "F12345678", "url": "https://files.slack.com/x"}},
         "must provide only one of id or url [json-pointer:/blocks/0/slack_file]"),
        ({"type": "image", "alt_text": "x", "slack_file": {"id": "file-1"}},
         "input must match regex pattern: ^[F][A-Z0-9]{8,}$ [json-pointer:/blocks/0/slack_file/id]"),
        ({"type": "image", "alt_text": "x", "image_url": "not a url"}, "must be a valid URL"),
        ({"type": "image", "image_url": "https://a.example/x.png"}, "missing required field: alt_text"),
        ({"type": "image", "alt_text": "x" * 2001, "image_url": "https://a.example/x.png"},
         "must be less than 2001 characters [json-pointer:/blocks/0/alt_text]"),
    ],
)
def test_image_blocks_are_checked_like_slack(block, error):
    assert any(error in e for e in check_message_blocks([block]))


def test_slack_file_must_be_an_uploaded_image_slack_shows(fake, client):
    png = _upload(client, shape_image("circle", 1))
    webp = _upload(client, shape_image("circle", 1, fmt="WEBP"), "b.webp")

    def post(file_id):
        return client.chat_postMessage(channel="U0ANN", text="x", blocks=[
            {"type": "image", "alt_text": "a picture", "slack_file": {"id": file_id}}])

    fake.add_user("U0ANN")
    assert post(png)["ok"]
    for bad in (webp, "F99999999"):  # Slack's image blocks show PNG, JPEG and GIF; an unknown id is refused
        with pytest.raises(SlackApiError) as err:
            post(bad)
        assert err.value.response["errors"] == ["invalid slack file [json-pointer:/blocks/0/slack_file]"]
    fake.delete_file(png)
    with pytest.raises(SlackApiError):
        post(png)
    record = fake.file(webp)
    assert record["channels"] == [] and record["content"].startswith(b"RIFF")


def test_image_url_slack_cannot_download_and_views(fake, client):
    fake.add_user("U0ANN")
    fake.fail_image_url("https://img.example.com/gone.png")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="U0ANN", text="x", blocks=[
            {"type": "image", "alt_text": "x", "image_url": "https://img.example.com/gone.png"}])
    assert "downloading image failed [json-pointer:/blocks/0/image_url]" in err.value.response["errors"][0]
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Image"},
            "blocks": [{"type": "image", "alt_text": "x", "slack_file": {"id": "F12345678"}}]}
    assert check_view(view) == []  # structurally fine; views.open also checks that the file exists
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=fake.new_trigger_id("U0ANN"), view=view)
    assert "invalid slack file" in str(err.value.response["response_metadata"])


def test_the_upload_post_can_fail_on_demand(fake, client):
    import urllib.error
    import urllib.request

    fake.fail_next("upload", status=429, retry_after=2)
    got = client.files_getUploadURLExternal(filename="a.png", length=3)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(urllib.request.Request(got["upload_url"], data=b"abc", method="POST"))
    assert err.value.code == 429 and err.value.headers["Retry-After"] == "2"
    opener.open(urllib.request.Request(got["upload_url"], data=b"abc", method="POST")).read()
    assert [p["file_id"] for p in fake.upload_posts] == [got["file_id"]] * 2


# ------------------------------------------------------------------------------------------------ OpenAI


def _ask(server: FakeOpenAI, url: str, detail: str = "auto"):
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    return client.chat.completions.create(model="m", messages=[
        {"role": "system", "content": "You label images."},
        {"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                     {"type": "image_url", "image_url": {"url": url, "detail": detail}}]}])


def test_image_parts_are_accepted_and_counted_as_image_tokens():
    data = base64.b64encode(shape_image("star", 1)).decode()
    with FakeOpenAI() as server:
        low = _ask(server, f"data:image/png;base64,{data}", "low")
        high = _ask(server, f"data:image/png;base64,{data}", "high")
        url = _ask(server, "https://img.example.com/a.jpg")
        seen = server.chat_requests()[0]["messages"][1]["content"][1]
    text_tokens = low.usage.prompt_tokens - 85
    assert high.usage.prompt_tokens - text_tokens == 85 + 170  # 192x192: one 512-pixel tile
    assert url.usage.prompt_tokens - text_tokens == 85 + 170 * 4  # size unknown: 1024x1024, scaled to 768
    assert seen == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}", "detail": "low"}}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), "does not represent a valid image"),
        ("data:image/bmp;base64,AAAA", "Invalid image data URL"),
        ("data:image/png;base64,***", "does not represent a valid image"),
        ("ftp://img.example.com/a.png", "Invalid image URL"),
    ],
)
def test_bad_image_parts_are_refused(url, message):
    with FakeOpenAI() as server, pytest.raises(openai.BadRequestError) as err:
        _ask(server, url)
    assert message in str(err.value)


def test_a_text_only_model_refuses_image_parts():
    with FakeOpenAI(vision=False) as server, pytest.raises(openai.BadRequestError) as err:
        _ask(server, "https://img.example.com/a.png")
    assert "image_url is only supported by certain models" in str(err.value)
