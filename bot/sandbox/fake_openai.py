"""FakeOpenAI: an OpenAI-compatible stand-in speaking HTTP on 127.0.0.1.

Point the real client at it: `openai.OpenAI(base_url=fake.base_url, api_key="test")`. It serves
chat completions (structured outputs, JSON mode, token usage with imitated prompt caching), files and
the Batch API, and can be told to fail, stall or answer garbage so retry, timeout and fallback paths
can be tested through the real client.

Image content parts (`{"type": "image_url", "image_url": {"url": ..., "detail": ...}}`) are accepted
the way a vision model takes them: a data: URL of a PNG, JPEG, WebP or GIF (checked by content), or an
https:// URL; they count as image tokens (85 at low detail, plus 170 per 512-pixel tile otherwise).
`vision=False` makes the stand-in a text-only model that refuses them as OpenAI does.

Prompt caching is imitated like the provider does it: the prompt (messages in order, system first) is
cached in 128-token blocks per (model, prompt_cache_key); a later request whose prompt starts with a
cached prefix of at least 1024 tokens reports that prefix as `cached_tokens`. Tokens are approximated
as characters // 4.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import io
import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bot.sandbox.http import FakeHTTPServer, Request, Response

Responder = Callable[[dict[str, Any]], "str | dict[str, Any] | list[Any]"]

CHARS_PER_TOKEN = 4
CACHE_BLOCK_TOKENS = 128
CACHE_MIN_TOKENS = 1024
MALFORMED_CONTENT = '{"label": "positive", "confidence": 0.9'  # cut mid-object: not JSON
#: What GET /v1/models lists when no `models` are given (completions then accept any model name).
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "test-model")
FILE_PURPOSES = frozenset(
    {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"},
)
_ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    404: ("Not found.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


class Recorded(NamedTuple):
    """One HTTP request received: method, path, JSON body (multipart: its form fields)."""

    method: str
    path: str
    body: Any


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    default_message, kind, code = _ERROR_DEFAULTS.get(status, ("Error.", "server_error", None))
    return {"error": {"message": message or default_message, "type": kind, "param": None, "code": code}}


# --------------------------------------------------------------------------------------------------
# JSON schema helpers
# --------------------------------------------------------------------------------------------------


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def example_for_schema(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small instance that satisfies `schema` (first enum value, all properties, minimum sizes)."""
    root = root if root is not None else schema
    if depth > 32:
        return None
    if "$ref" in schema:
        return example_for_schema(_resolve_ref(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if schema.get("enum"):
        return copy.deepcopy(schema["enum"][0])
    for key in ("anyOf", "oneOf", "allOf"):
        variants = schema.get(key)
        if variants:
            non_null = [v for v in variants if v.get("type") != "null"] or variants
            return example_for_schema(non_null[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return {
            name: example_for_schema(sub, root, depth + 1) for name, sub in (schema.get("properties") or {}).items()
        }
    if kind == "array":
        item = schema.get("items") or {}
        return [example_for_schema(item, root, depth + 1) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "string":
        text = "example"
        minimum, maximum = int(schema.get("minLength", 0)), schema.get("maxLength")
        text = text.ljust(minimum, "x")
        return text[: int(maximum)] if maximum is not None else text
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    return None


def strict_schema_problems(schema: dict[str, Any]) -> list[str]:
    """What OpenAI's strict structured outputs refuse: objects must set `additionalProperties: false`
    and list every property in `required`."""
    problems: list[str] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*path, str(i)))
            return
        if not isinstance(node, dict):
            return
        is_object = node.get("type") == "object" or (isinstance(node.get("type"), list) and "object" in node["type"])
        if is_object or "properties" in node:
            where = f"context={path!r}"
            if node.get("additionalProperties") is not False:
                problems.append(f"In {where}, 'additionalProperties' is required to be supplied and to be false.")
            properties = node.get("properties") or {}
            missing = [name for name in properties if name not in (node.get("required") or [])]
            if missing:
                problems.append(
                    f"In {where}, 'required' is required to be supplied and to be an array including every "
                    f"key in properties. Missing '{missing[0]}'."
                )
        for key, value in node.items():
            if isinstance(value, dict | list):
                walk(value, (*path, key))

    walk(schema, ())
    return problems


def default_responder(request: dict[str, Any]) -> str | dict[str, Any]:
    """Answer a schema-constrained request with a valid instance, JSON mode with `{}`, else "OK"."""
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return example_for_schema((response_format.get("json_schema") or {}).get("schema") or {})
    if response_format.get("type") == "json_object":
        return {}
    return "OK"


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The prompt as the fake counts and caches it: each message as `<role>content`, in order."""
    return "".join(f"<{m.get('role', '')}>{_message_text(m)}" for m in messages if isinstance(m, dict))


def count_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image, or None when it is not one."""
    if not data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")) and not (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    ):
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError):
        return None


def image_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The image content parts of a chat request (`{"url": ..., "detail": ...}` each), in order."""
    found = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            found += [p["image_url"] for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    return found


def decode_data_url(url: str) -> bytes:
    """The bytes of a data: URL (for responders that look at the image)."""
    return base64.b64decode(url.partition(",")[2])


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


@dataclass
class _Fault:
    status: int
    retry_after: float | None
    body: Any
    remaining: int
    path: str | None


@dataclass
class _Delay:
    seconds: float
    remaining: int
    path: str | None


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


class FakeOpenAI(FakeHTTPServer):
    """OpenAI-compatible stand-in. `responder(request_dict) -> str | dict` writes the answers."""

    def __init__(
        self,
        responder: Responder | None = None,
        latency: float = 0.0,
        *,
        schema_support: bool = True,
        api_key: str | None = None,
        models: list[str] | tuple[str, ...] | None = None,
        vision: bool = True,
    ) -> None:
        super().__init__()
        #: The models this server serves: listed by GET /v1/models, and a completion for any other
        #: answers 404 model_not_found. None: list DEFAULT_MODELS and accept every model name.
        self.models = list(models) if models is not None else None
        self.responder: Responder = responder or default_responder
        self.latency = latency
        self.schema_support = schema_support
        self.vision = vision
        self.api_key = api_key
        self._lock = threading.RLock()
        self._init_state()

    def _init_state(self) -> None:
        self._requests: list[Recorded] = []
        self._faults: deque[_Fault] = deque()
        self._delays: deque[_Delay] = deque()
        self._malformed = 0
        self._cache: dict[tuple[str, str | None], set[bytes]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._file_data: dict[str, bytes] = {}
        self._batches: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        """Forget requests, faults, the prompt cache, files and batches."""
        with self._lock:
            self._init_state()
            self.internal_errors.clear()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `openai.OpenAI(base_url=...)`."""
        return f"{self.root_url}/v1"

    # ---- fault injection -------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 429,
        times: int = 1,
        retry_after: float | None = None,
        body: Any = None,
        path: str | None = "/v1/chat/completions",
    ) -> None:
        """Answer the next `times` requests to `path` (None: any path) with `status` and an
        OpenAI-style error body (or `body`), plus a `retry-after` header if given."""
        with self._lock:
            self._faults.append(_Fault(status, retry_after, body, times, path))

    def delay_next(self, seconds: float, times: int = 1, path: str | None = "/v1/chat/completions") -> None:
        """Hold the next `times` requests to `path` for `seconds` before answering (client timeouts)."""
        with self._lock:
            self._delays.append(_Delay(seconds, times, path))

    def malformed_next(self, times: int = 1) -> None:
        """The next `times` chat completions answer content that is not JSON."""
        with self._lock:
            self._malformed += times

    @staticmethod
    def _take(queue: deque[Any], path: str) -> Any:
        for item in queue:
            if item.path is None or item.path == path:
                item.remaining -= 1
                if item.remaining <= 0:
                    queue.remove(item)
                return item
        return None

    # ---- inspection ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Every HTTP request received (including refused ones), in order."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests received over HTTP, in order."""
        return [r.body for r in self.requests if r.path == "/v1/chat/completions" and r.method == "POST"]

    def batches(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._batches.values()))

    def file_content(self, file_id: str) -> bytes | None:
        with self._lock:
            return self._file_data.get(file_id)

    # ---- HTTP ------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        body: Any = None
        parts = None
        if request.content_type == "multipart/form-data":
            parts = request.multipart()
            body = {p.name: (p.filename if p.filename is not None else p.data.decode("utf-8")) for p in parts}
        elif request.body:
            try:
                body = request.json()
            except (ValueError, UnicodeDecodeError):
                body = None
                if request.method == "POST":
                    return self._error(OpenAIError(400, "We could not parse the JSON body of your request."))
        with self._lock:
            self._requests.append(Recorded(request.method, request.path, copy.deepcopy(body)))
        try:
            self._check_auth(request)
            delay = self._take_locked(self._delays, request.path)
            if delay is not None:
                self.stopping.wait(delay.seconds)
            fault = self._take_locked(self._faults, request.path)
            if fault is not None:
                headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                payload = fault.body if fault.body is not None else error_body(fault.status)
                return Response(fault.status, payload, {"x-request-id": _new_id("req_"), **headers})
            return self._route(request, body, parts)
        except OpenAIError as exc:
            return self._error(exc)

    def _take_locked(self, queue: deque[Any], path: str) -> Any:
        with self._lock:
            return self._take(queue, path)

    def _error(self, exc: OpenAIError) -> Response:
        return Response(exc.status, exc.body, {"x-request-id": _new_id("req_")})

    def _check_auth(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            raise OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if self.api_key is not None and key != self.api_key:
            raise OpenAIError(401, f"Incorrect API key provided: {key[:3]}***.", code="invalid_api_key")

    def _route(self, request: Request, body: Any, parts: Any) -> Response:
        method, path = request.method, request.path
        headers = {"x-request-id": _new_id("req_")}
        if method == "POST" and path == "/v1/chat/completions":
            if self.latency:
                self.stopping.wait(self.latency)
            status, payload = self.complete(body if isinstance(body, dict) else {}, allow_faults=True)
            headers["openai-processing-ms"] = str(int(self.latency * 1000))
            return Response(status, payload, headers)
        if path == "/v1/models" and method == "GET":
            names = self.models if self.models is not None else list(DEFAULT_MODELS)
            return Response(200, {"object": "list", "data": [self._model(n) for n in names]}, headers)
        match = re.fullmatch(r"/v1/models/(.+)", path)
        if match and method == "GET":
            name = match.group(1)
            if self.models is not None and name not in self.models:
                raise OpenAIError(404, f"The model `{name}` does not exist or you do not have access to it.",
                                  code="model_not_found")
            return Response(200, self._model(name), headers)
        if path == "/v1/files" and method == "POST":
            return Response(200, self._upload(parts or []), headers)
        if path == "/v1/files" and method == "GET":
            with self._lock:
                return Response(200, self._list(list(self._files.values())), headers)
        match = re.fullmatch(r"/v1/files/([^/]+)(/content)?", path)
        if match:
            file_id, content = match.group(1), match.group(2)
            with self._lock:
                meta = self._files.get(file_id)
                if meta is None:
                    raise OpenAIError(404, f"No such File object: {file_id}", param="id")
                if method == "GET" and content:
                    return Response(
                        200, self._file_data[file_id], {**headers, "content-type": "application/octet-stream"}
                    )
                if method == "GET":
                    return Response(200, copy.deepcopy(meta), headers)
                if method == "DELETE":
                    del self._files[file_id]
                    del self._file_data[file_id]
                    return Response(200, {"id": file_id, "object": "file", "deleted": True}, headers)
        if path == "/v1/batches" and method == "POST":
            return Response(200, self._create_batch(body if isinstance(body, dict) else {}), headers)
        if path == "/v1/batches" and method == "GET":
            with self._lock:
                newest_first = sorted(self._batches.values(), key=lambda b: b["created_at"], reverse=True)
                return Response(200, self._list(newest_first), headers)
        match = re.fullmatch(r"/v1/batches/([^/]+)(/cancel)?", path)
        if match:
            batch_id, cancel = match.group(1), match.group(2)
            with self._lock:
                batch = self._batches.get(batch_id)
                if batch is None:
                    raise OpenAIError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
                if method == "POST" and cancel:
                    if batch["status"] not in ("validating", "in_progress", "finalizing"):
                        raise OpenAIError(400, f"Cannot cancel a batch with status '{batch['status']}'.")
                    batch.update(status="cancelling", cancelling_at=int(time.time()))
                    return Response(200, copy.deepcopy(batch), headers)
                if method == "GET" and not cancel:
                    return Response(200, copy.deepcopy(batch), headers)
        raise OpenAIError(404, f"Invalid URL ({method} {path})")

    @staticmethod
    def _model(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "fakeopenai"}

    @staticmethod
    def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
        data = copy.deepcopy(items)
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        }

    # ---- chat completions ------------------------------------------------------------------------

    def complete(self, body: dict[str, Any], *, allow_faults: bool = False) -> tuple[int, dict[str, Any]]:
        """Answer one chat completion request body: (HTTP status, response or error body)."""
        try:
            return 200, self._complete(body, allow_faults)
        except OpenAIError as exc:
            return exc.status, exc.body

    def _complete(self, body: dict[str, Any], allow_faults: bool) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise OpenAIError(400, "you must provide a model parameter", param="model")
        if self.models is not None and model not in self.models:
            raise OpenAIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                              code="model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise OpenAIError(400, "[] is too short - 'messages'", param="messages")
        if body.get("stream"):
            raise OpenAIError(400, "FakeOpenAI does not stream", param="stream")
        temperature = body.get("temperature")
        if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
            raise OpenAIError(400, f"{temperature!r} is not valid for temperature (0 to 2)", param="temperature")
        self._check_response_format(body.get("response_format"), messages)
        image_tokens = self._check_content(messages)

        malformed = False
        if allow_faults:
            with self._lock:
                if self._malformed > 0:
                    self._malformed -= 1
                    malformed = True
        if malformed:
            content = MALFORMED_CONTENT
        else:
            answer = self.responder(copy.deepcopy(body))
            content = answer if isinstance(answer, str) else json.dumps(answer)

        finish_reason = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and count_tokens(content) > limit:
            content = content[: limit * CHARS_PER_TOKEN]
            finish_reason = "length"

        prompt = prompt_text(messages)
        prompt_tokens = max(1, count_tokens(prompt)) + image_tokens
        completion_tokens = max(1, count_tokens(content)) if content else 0
        cached = self._cached_tokens((model, body.get("prompt_cache_key")), prompt)
        return {
            "id": _new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fakeopenai",
        }

    def _check_content(self, messages: list[Any]) -> int:
        """Check the messages' content parts; returns the image tokens. Raises OpenAIError."""
        tokens = 0
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for j, part in enumerate(content):
                where = f"messages[{i}].content[{j}]"
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    if not isinstance(part.get("text"), str):
                        raise OpenAIError(400, f"Invalid type for '{where}.text': expected a string.", param=where)
                elif kind == "image_url":
                    if message.get("role") != "user":
                        raise OpenAIError(400, f"Invalid '{where}': image content parts are only allowed in user "
                                               "messages.", param=where)
                    if not self.vision:
                        raise OpenAIError(400, "Invalid content type. image_url is only supported by certain models.",
                                          param=where, code="invalid_value")
                    tokens += self._image_tokens(part.get("image_url"), where)
                else:
                    raise OpenAIError(400, f"Invalid value: {kind!r}. Supported values are: 'text' and 'image_url'.",
                                      param=f"{where}.type", code="invalid_value")
        return tokens

    @staticmethod
    def _image_tokens(spec: Any, where: str) -> int:
        url = spec.get("url") if isinstance(spec, dict) else None
        detail = spec.get("detail", "auto") if isinstance(spec, dict) else "auto"
        if detail not in ("auto", "low", "high"):
            raise OpenAIError(400, f"Invalid value: {detail!r}. Supported values are: 'auto', 'low', and 'high'.",
                              param=f"{where}.image_url.detail", code="invalid_value")
        if not isinstance(url, str) or not url:
            raise OpenAIError(400, f"Missing required parameter: '{where}.image_url.url'.",
                              param=f"{where}.image_url.url", code="missing_required_parameter")
        size: tuple[int, int] | None = None
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            mime = header[5:].split(";")[0]
            if mime not in ("image/png", "image/jpeg", "image/gif", "image/webp") or ";base64" not in header:
                raise OpenAIError(400, "Invalid image data URL: use data:image/(png|jpeg|gif|webp);base64,...",
                                  param=f"{where}.image_url.url", code="invalid_image_format")
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise OpenAIError(400, "The image data you provided does not represent a valid image.",
                                  param=f"{where}.image_url.url", code="invalid_image") from None
            size = _image_size(data)
            if size is None:
                raise OpenAIError(400, "The image data you provided does not represent a valid image.",
                                  param=f"{where}.image_url.url", code="invalid_image")
        elif not re.match(r"^https?://\S+$", url):
            raise OpenAIError(400, "Invalid image URL: expected a data: URL or an http(s) URL.",
                              param=f"{where}.image_url.url", code="invalid_image_url")
        if detail == "low":
            return 85
        width, height = size or (1024, 1024)
        scale = min(1.0, 2048 / max(width, height))
        width, height = width * scale, height * scale
        scale = min(1.0, 768 / min(width, height))
        tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
        return 85 + 170 * tiles

    def _check_response_format(self, response_format: Any, messages: list[Any]) -> None:
        if response_format is None:
            return
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_schema":
            if not self.schema_support:
                raise OpenAIError(
                    400,
                    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                    param="response_format",
                )
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not spec.get("name"):
                raise OpenAIError(
                    400,
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    param="response_format.json_schema.name",
                    code="missing_required_parameter",
                )
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", spec["name"]):
                raise OpenAIError(
                    400,
                    "Invalid 'response_format.json_schema.name': string does not match pattern.",
                    param="response_format.json_schema.name",
                    code="invalid_value",
                )
            schema = spec.get("schema")
            if spec.get("strict") and isinstance(schema, dict):
                problems = strict_schema_problems(schema)
                if problems:
                    raise OpenAIError(
                        400,
                        f"Invalid schema for response_format '{spec['name']}': {problems[0]}",
                        param="response_format",
                        code="invalid_json_schema",
                    )
        elif kind == "json_object":
            if not any("json" in _message_text(m).lower() for m in messages if isinstance(m, dict)):
                raise OpenAIError(
                    400,
                    "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                    "'json_object'.",
                    param="messages",
                )
        elif kind != "text":
            raise OpenAIError(
                400,
                f"Invalid value: {kind!r}. Supported values are: 'json_object', 'json_schema', and 'text'.",
                param="response_format.type",
                code="invalid_value",
            )

    def _cached_tokens(self, key: tuple[str, str | None], prompt: str) -> int:
        block_chars = CACHE_BLOCK_TOKENS * CHARS_PER_TOKEN
        digests: list[bytes] = []
        running = hashlib.sha256()
        for start in range(0, (len(prompt) // block_chars) * block_chars, block_chars):
            running.update(prompt[start : start + block_chars].encode("utf-8"))
            digests.append(running.copy().digest())
        with self._lock:
            seen = self._cache.setdefault(key, set())
            hits = 0
            for digest in digests:
                if digest not in seen:
                    break
                hits += 1
            seen.update(digests)
        cached = hits * CACHE_BLOCK_TOKENS
        return cached if cached >= CACHE_MIN_TOKENS else 0

    # ---- files and batches -----------------------------------------------------------------------

    def _store_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": _new_id("file-"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        with self._lock:
            self._files[meta["id"]] = meta
            self._file_data[meta["id"]] = data
        return copy.deepcopy(meta)

    def _upload(self, parts: list[Any]) -> dict[str, Any]:
        fields = {p.name: p for p in parts}
        purpose_part, file_part = fields.get("purpose"), fields.get("file")
        if purpose_part is None:
            raise OpenAIError(400, "Missing required parameter: 'purpose'.", param="purpose")
        if file_part is None or file_part.filename is None:
            raise OpenAIError(400, "Missing required parameter: 'file'.", param="file")
        purpose = purpose_part.data.decode("utf-8")
        if purpose not in FILE_PURPOSES:
            raise OpenAIError(400, f"Invalid value for purpose: {purpose!r}.", param="purpose")
        if purpose == "batch" and not file_part.filename.endswith(".jsonl"):
            raise OpenAIError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        return self._store_file(file_part.data, file_part.filename, purpose)

    def _create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        file_id = body.get("input_file_id")
        with self._lock:
            meta = self._files.get(file_id or "")
            data = self._file_data.get(file_id or "")
        if meta is None or data is None:
            raise OpenAIError(400, f"Invalid 'input_file_id': {file_id!r}.", param="input_file_id")
        if meta["purpose"] != "batch":
            raise OpenAIError(400, "The input file must have purpose 'batch'.", param="input_file_id")
        if body.get("endpoint") != "/v1/chat/completions":
            raise OpenAIError(400, f"Unsupported endpoint for FakeOpenAI: {body.get('endpoint')!r}", param="endpoint")
        if body.get("completion_window") != "24h":
            raise OpenAIError(400, "completion_window must be '24h'.", param="completion_window")
        now = int(time.time())
        lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        batch = {
            "id": _new_id("batch_"),
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86_400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        with self._lock:
            self._batches[batch["id"]] = batch
        return copy.deepcopy(batch)

    def complete_batches(self) -> list[str]:
        """Test hook: run every pending batch through the responder now (cancelling ones become
        cancelled). Returns the ids of the batches that changed."""
        with self._lock:
            pending = [b for b in self._batches.values() if b["status"] in ("validating", "in_progress", "cancelling")]
        changed = []
        for batch in pending:
            now = int(time.time())
            if batch["status"] == "cancelling":
                with self._lock:
                    batch.update(status="cancelled", cancelled_at=now)
                changed.append(batch["id"])
                continue
            self._run_batch(batch)
            changed.append(batch["id"])
        return changed

    def _run_batch(self, batch: dict[str, Any]) -> None:
        data = self.file_content(batch["input_file_id"]) or b""
        items: list[tuple[int, Any]] = []
        problems: list[dict[str, Any]] = []
        seen_ids: set[str] = set()
        models: set[str] = set()
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                problems.append(
                    {"code": "invalid_json_line", "message": "This line is not valid JSON.", "line": number}
                )
                continue
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str):
                problems.append(
                    {"code": "missing_required_parameter", "message": "custom_id is required", "line": number}
                )
                continue
            if custom_id in seen_ids:
                problems.append(
                    {
                        "code": "duplicate_custom_id",
                        "message": f"The custom_id '{custom_id}' is used more than once.",
                        "line": number,
                        "param": "custom_id",
                    }
                )
                continue
            seen_ids.add(custom_id)
            if item.get("url") != batch["endpoint"] or item.get("method") != "POST":
                problems.append(
                    {
                        "code": "invalid_url",
                        "message": f"Each request must be POST {batch['endpoint']}.",
                        "line": number,
                    }
                )
                continue
            if isinstance(item.get("body"), dict) and isinstance(item["body"].get("model"), str):
                models.add(item["body"]["model"])
            items.append((number, item))
        if len(models) > 1:
            problems.append(
                {"code": "mismatched_model", "message": "Batch requests must all use one model.", "line": None}
            )
        now = int(time.time())
        if problems:
            with self._lock:
                batch.update(status="failed", failed_at=now, errors={"object": "list", "data": problems})
            return

        output: list[str] = []
        errors: list[str] = []
        for _, item in items:
            status, body = self.complete(item["body"] if isinstance(item.get("body"), dict) else {})
            result = {
                "id": _new_id("batch_req_"),
                "custom_id": item["custom_id"],
                "response": {"status_code": status, "request_id": _new_id("req_"), "body": body},
                "error": None,
            }
            (output if status == 200 else errors).append(json.dumps(result))
        output_meta = (
            self._store_file(("\n".join(output) + "\n").encode(), f"{batch['id']}_output.jsonl", "batch_output")
            if output
            else None
        )
        error_meta = (
            self._store_file(("\n".join(errors) + "\n").encode(), f"{batch['id']}_error.jsonl", "batch_output")
            if errors
            else None
        )
        with self._lock:
            batch.update(
                status="completed",
                in_progress_at=batch["in_progress_at"] or now,
                finalizing_at=now,
                completed_at=now,
                output_file_id=output_meta["id"] if output_meta else None,
                error_file_id=error_meta["id"] if error_meta else None,
                request_counts={"total": len(items), "completed": len(output), "failed": len(errors)},
            )
