"""FakeOpenAI answers the real `openai` client like the provider does."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel

from bot.sandbox.fake_openai import (
    MALFORMED_CONTENT,
    FakeOpenAI,
    default_responder,
    example_for_schema,
    strict_schema_problems,
)

LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["spam", "ham"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "spans": {"type": "array", "items": {"$ref": "#/$defs/span"}},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["label", "confidence", "spans", "note"],
    "additionalProperties": False,
    "$defs": {
        "span": {
            "type": "object",
            "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}},
            "required": ["start", "end"],
            "additionalProperties": False,
        }
    },
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "label", "schema": LABEL_SCHEMA, "strict": True}}
USER = [{"role": "user", "content": "Is 'WIN A PRIZE' spam?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake
        assert fake.internal_errors == []


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.reset()
    server.responder = default_responder
    server.schema_support = True
    server.latency = 0.0
    return server


@pytest.fixture
def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=5)


# ---- chat completions ------------------------------------------------------------------------------


def test_structured_output_default_answer_fits_the_schema(fake: FakeOpenAI, client: openai.OpenAI):
    completion = client.chat.completions.create(model="gpt-test", messages=USER, response_format=SCHEMA_FORMAT)

    assert completion.object == "chat.completion" and completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert json.loads(choice.message.content) == {"label": "spam", "confidence": 0.0, "spans": [], "note": "example"}
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_parse_with_a_pydantic_model(client: openai.OpenAI):
    class Draft(BaseModel):
        label: Literal["positive", "negative"]
        rationale: str

    completion = client.chat.completions.parse(model="gpt-test", messages=USER, response_format=Draft)
    assert completion.choices[0].message.parsed == Draft(label="positive", rationale="example")


def test_responder_sees_the_request_and_may_return_a_dict(fake: FakeOpenAI, client: openai.OpenAI):
    seen: list[dict[str, Any]] = []

    def responder(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"label": "ham", "confidence": 0.7, "spans": [{"start": 0, "end": 3}], "note": None}

    fake.responder = responder
    completion = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "system", "content": "You label."}, *USER],
        response_format=SCHEMA_FORMAT,
        temperature=0,
        prompt_cache_key="project-7",
        max_completion_tokens=200,
    )
    assert json.loads(completion.choices[0].message.content)["label"] == "ham"
    request = seen[0]
    assert request["model"] == "gpt-test" and request["temperature"] == 0
    assert request["prompt_cache_key"] == "project-7" and request["max_completion_tokens"] == 200
    assert request["messages"][0] == {"role": "system", "content": "You label."}
    assert request["response_format"]["json_schema"]["name"] == "label"
    assert fake.chat_requests() == [request]


def test_json_mode_needs_the_word_json(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=USER, response_format={"type": "json_object"})
    assert info.value.param == "messages"
    ok = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Answer in JSON."}],
        response_format={"type": "json_object"},
    )
    assert json.loads(ok.choices[0].message.content) == {}


def test_schema_not_supported_gives_openai_400_so_callers_can_fall_back(fake: FakeOpenAI, client: openai.OpenAI):
    fake.schema_support = False
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=USER, response_format=SCHEMA_FORMAT)
    assert info.value.status_code == 400
    assert info.value.body == {
        "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
    fallback = client.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": "Reply with a json object."}, *USER],
        response_format={"type": "json_object"},
    )
    assert fallback.choices[0].message.content == "{}"


def test_strict_schema_rules_are_enforced(client: openai.OpenAI):
    loose = {"type": "object", "properties": {"label": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": loose, "strict": True}}
    with pytest.raises(openai.BadRequestError, match="additionalProperties"):
        client.chat.completions.create(model="m", messages=USER, response_format=response_format)
    assert strict_schema_problems(LABEL_SCHEMA) == []
    assert len(strict_schema_problems(loose)) == 2


def test_example_for_schema_handles_refs_unions_and_sizes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "minLength": 9}, "minItems": 2},
            "kind": {"const": "span"},
            "n": {"type": ["integer", "null"], "minimum": 3},
            "ok": {"type": "boolean"},
        },
    }
    assert example_for_schema(schema) == {"tags": ["examplexx", "examplexx"], "kind": "span", "n": 3, "ok": False}


def test_output_over_the_token_limit_is_cut_with_finish_reason_length(fake: FakeOpenAI, client: openai.OpenAI):
    fake.responder = lambda request: "word " * 100
    completion = client.chat.completions.create(model="m", messages=USER, max_completion_tokens=10)
    assert completion.choices[0].finish_reason == "length"
    assert len(completion.choices[0].message.content) == 40
    assert completion.usage.completion_tokens == 10


def test_prompt_caching_is_imitated_per_cache_key(client: openai.OpenAI):
    system = {"role": "system", "content": "Guidelines. " * 500}  # 6000 chars, ~1500 tokens

    def usage(question: str, key: str | None) -> Any:
        messages = [system, {"role": "user", "content": question}]
        return client.chat.completions.create(model="m", messages=messages, prompt_cache_key=key).usage

    first = usage("A: first item", "project-1")
    second = usage("B: second item", "project-1")
    other_key = usage("C: third item", "project-2")

    shared_chars = len("<system>" + system["content"] + "<user>")
    assert first.prompt_tokens == len("<system>" + system["content"] + "<user>A: first item") // 4
    assert first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details.cached_tokens == (shared_chars // 4 // 128) * 128 == 1408
    assert other_key.prompt_tokens_details.cached_tokens == 0


def test_short_prompts_are_never_cached(client: openai.OpenAI):
    messages = [{"role": "system", "content": "x" * 3000}, *USER]  # ~750 tokens < 1024
    for _ in range(2):
        usage = client.chat.completions.create(model="m", messages=messages, prompt_cache_key="k").usage
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_malformed_content(fake: FakeOpenAI, client: openai.OpenAI):
    fake.malformed_next()
    bad = client.chat.completions.create(model="m", messages=USER, response_format=SCHEMA_FORMAT)
    assert bad.choices[0].message.content == MALFORMED_CONTENT
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad.choices[0].message.content)
    good = client.chat.completions.create(model="m", messages=USER, response_format=SCHEMA_FORMAT)
    assert json.loads(good.choices[0].message.content)["label"] == "spam"


# ---- faults through the client's retry logic ---------------------------------------------------------


def test_rate_limit_with_retry_after_is_retried_by_the_client(fake: FakeOpenAI):
    fake.fail_next(429, retry_after=0.2)
    client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=2)
    started = time.monotonic()
    completion = client.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "OK"
    assert time.monotonic() - started >= 0.2
    assert len(fake.chat_requests()) == 2


def test_rate_limit_without_retries_raises(fake: FakeOpenAI, client: openai.OpenAI):
    fake.fail_next(429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=USER)
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.code == "rate_limit_exceeded"


def test_server_errors_are_retried_then_give_up(fake: FakeOpenAI):
    fake.fail_next(500, times=2, retry_after=0.01)
    client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=1)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=USER)
    assert len(fake.chat_requests()) == 2
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "OK"


def test_custom_error_body(fake: FakeOpenAI, client: openai.OpenAI):
    body = {"error": {"message": "context too long", "type": "invalid_request_error", "param": "messages", "code": "x"}}
    fake.fail_next(400, body=body)
    with pytest.raises(openai.BadRequestError, match="context too long"):
        client.chat.completions.create(model="m", messages=USER)


def test_client_timeout_and_a_retry_that_succeeds(fake: FakeOpenAI):
    fake.delay_next(1.0)
    quick = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):  # no retries: a slow answer can only end as a timeout
        quick.chat.completions.create(model="m", messages=USER)

    fake.delay_next(1.0)
    patient = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=1, timeout=0.2)
    assert patient.chat.completions.create(model="m", messages=USER).choices[0].message.content == "OK"


def test_latency_applies_to_every_chat_request(fake: FakeOpenAI, client: openai.OpenAI):
    fake.latency = 0.1
    started = time.monotonic()
    client.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - started >= 0.1


def test_api_key_is_required_and_checked() -> None:
    with FakeOpenAI(api_key="sk-right") as fake:
        request = urllib.request.Request(fake.base_url + "/chat/completions", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 401
        wrong = openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="m", messages=USER)
        right = openai.OpenAI(base_url=fake.base_url, api_key="sk-right", max_retries=0)
        assert right.chat.completions.create(model="m", messages=USER).choices[0].message.content == "OK"


def test_unknown_paths_and_bad_requests(fake: FakeOpenAI, client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-test")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[])
    assert [r.path for r in fake.requests] == ["/v1/fine_tuning/jobs/ftjob-test", "/v1/chat/completions"]


def test_models_listed_and_unknown_ones_refused():
    with FakeOpenAI(models=["served-model"]) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        assert [m.id for m in client.models.list()] == ["served-model"]
        assert client.models.retrieve("served-model").id == "served-model"
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            client.models.retrieve("gpt-unknown")
        with pytest.raises(openai.NotFoundError) as refused:
            client.chat.completions.create(model="gpt-unknown", messages=USER)
        assert refused.value.code == "model_not_found"
        assert client.chat.completions.create(model="served-model", messages=USER).model == "served-model"
    with FakeOpenAI() as fake:  # no list given: the defaults are listed and any model is served
        client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        assert "gpt-4o-mini" in {m.id for m in client.models.list()}
        assert client.chat.completions.create(model="anything", messages=USER).model == "anything"


# ---- files and batches ---------------------------------------------------------------------------------


def batch_line(custom_id: str, content: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": content}], **body},
    }


def upload(client: openai.OpenAI, lines: list[dict[str, Any]]) -> Any:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return client.files.create(file=("drafts.jsonl", io.BytesIO(data), "application/jsonl"), purpose="batch")


def test_files_and_batches_round_trip(fake: FakeOpenAI, client: openai.OpenAI):
    fake.responder = lambda request: {"echo": request["messages"][0]["content"]}
    fake.schema_support = False  # the third line asks for json_schema: it fails into the error file
    lines = [
        batch_line("item-1", "first"),
        batch_line("item-2", "second"),
        batch_line("item-3", "x", response_format=SCHEMA_FORMAT),
    ]
    uploaded = upload(client, lines)
    assert (uploaded.purpose, uploaded.filename, uploaded.status) == ("batch", "drafts.jsonl", "processed")
    assert client.files.retrieve(uploaded.id).bytes == uploaded.bytes
    assert client.files.content(uploaded.id).content == fake.file_content(uploaded.id)

    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "7"}
    )
    assert batch.status == "validating" and batch.request_counts.total == 3
    assert client.batches.retrieve(batch.id).status == "validating"

    assert fake.complete_batches() == [batch.id]
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.metadata == {"run": "7"}
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)

    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in output] == ["item-1", "item-2"]
    first = output[0]["response"]
    assert first["status_code"] == 200 and first["request_id"].startswith("req_")
    assert json.loads(first["body"]["choices"][0]["message"]["content"]) == {"echo": "first"}
    assert output[0]["error"] is None

    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert errors[0]["custom_id"] == "item-3" and errors[0]["response"]["status_code"] == 400
    assert fake.chat_requests() == []  # batch lines are not HTTP chat requests


def test_batch_cancel(fake: FakeOpenAI, client: openai.OpenAI):
    batch = client.batches.create(
        input_file_id=upload(client, [batch_line("a", "x")]).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    fake.complete_batches()
    cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.output_file_id is None
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(batch.id)


def test_batch_with_duplicate_custom_ids_fails_validation(fake: FakeOpenAI, client: openai.OpenAI):
    uploaded = upload(client, [batch_line("same", "x"), batch_line("same", "y")])
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    fake.complete_batches()
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.errors.data[0].code == "duplicate_custom_id" and failed.errors.data[0].line == 2


def test_batch_needs_a_known_batch_file(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope")
