"""The drafters: `Drafter` (any OpenAI-compatible server through the official `openai` client, with retries)
and `SimulatedDrafter` (the offline demo); `make_drafter(settings)` chooses."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import openai

from bot.config import Settings
from bot.core import observe
from bot.core.enums import DraftStatus, TaskType
from bot.core.values import MAX_REWRITE_CHARS, canonical_key, normalize
from bot.services.drafting.base import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    CREATE_HAS_CACHE_KEY,
    DEFAULT_BASE_URL,
    MAX_ATTEMPTS,
    MAX_RETRY_AFTER_SECONDS,
    DraftingUnavailable,
    Outcome,
    WorkItem,
)
from bot.services.drafting.breaker import Breaker
from bot.services.drafting.prompt import (
    DraftProblem,
    Prompt,
    messages,
    parse_output,
    response_format,
)
from bot.spec import ProjectSpec

log = logging.getLogger("labelbot.drafting")


# --------------------------------------------------------------------------------------------
# Drafters
# --------------------------------------------------------------------------------------------


class BaseDrafter:
    simulated = False

    def __init__(self) -> None:
        self._breakers: dict[int, Breaker] = {}
        self._breakers_lock = threading.Lock()

    def model_for(self, spec: ProjectSpec) -> str:
        raise NotImplementedError

    def breaker(self, project_id: int) -> Breaker:
        with self._breakers_lock:
            b = self._breakers.get(project_id)
            if b is None:
                b = self._breakers[project_id] = Breaker()
            return b

    def existing_breaker(self, project_id: int) -> Breaker | None:
        with self._breakers_lock:
            return self._breakers.get(project_id)

    def draft(self, prompt: Prompt, spec: ProjectSpec, item: WorkItem) -> Outcome:
        raise NotImplementedError


class Drafter(BaseDrafter):
    """Drafts through any OpenAI-compatible chat-completions server with structured outputs.

    Retries 429/5xx/connection errors with exponential backoff and jitter (Retry-After honoured), at
    most `max_attempts` calls; a timeout is stored as an error at once. A server that rejects
    `json_schema` is asked again in JSON mode, and that is remembered per base URL and model.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        if not settings.openai_api_key:
            raise DraftingUnavailable("Set OPENAI_API_KEY to draft with an LLM.")
        self.settings = settings
        self.base_url = (settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/")
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clients: dict[float, openai.OpenAI] = {}
        self._json_mode: set[tuple[str, str]] = set()
        self._no_images: dict[tuple[str, str], str] = {}  # (base URL, model) -> the server's refusal
        self._lock = threading.Lock()

    def model_for(self, spec: ProjectSpec) -> str:
        return spec.llm.model

    def client(self, timeout: float) -> openai.OpenAI:
        with self._lock:
            c = self._clients.get(timeout)
            if c is None:
                c = self._clients[timeout] = openai.OpenAI(
                    api_key=self.settings.openai_api_key, base_url=self.settings.openai_base_url,
                    max_retries=0, timeout=timeout,
                )
            return c

    def json_mode(self, model: str) -> bool:
        with self._lock:
            return (self.base_url, model) in self._json_mode

    def _remember_json_mode(self, model: str) -> None:
        with self._lock:
            if (self.base_url, model) not in self._json_mode:
                log.info("%s rejects json_schema for %s; drafting in JSON mode", self.base_url, model)
            self._json_mode.add((self.base_url, model))

    def request_json(self, prompt: Prompt, spec: ProjectSpec, text: str, *, json_mode: bool | None = None,
                     image: str | None = None) -> dict:
        """The chat-completions request body as sent on the wire (also a Batch API line's body); `image`
        (a data: or https:// URL) adds an image content part for an image item."""
        if json_mode is None:
            json_mode = self.json_mode(prompt.model)
        return {
            "model": prompt.model,
            "messages": messages(prompt, text, image, spec.llm.image_detail),
            "temperature": spec.llm.temperature,
            "response_format": response_format(prompt, json_mode=json_mode),
            "prompt_cache_key": f"labelbot:{spec.slug}:{prompt.version}",
        }

    def refuses_images(self, model: str) -> str | None:
        """The server's answer when it refused an image for `model` (it is not asked again), else None."""
        with self._lock:
            return self._no_images.get((self.base_url, model))

    def _remember_no_images(self, model: str, message: str) -> None:
        with self._lock:
            if (self.base_url, model) not in self._no_images:
                log.warning("%s refuses images for %s (%s): image items are served without drafts; set "
                            "llm.model to a vision model", self.base_url, model, message)
            self._no_images[(self.base_url, model)] = message

    def _create_kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(body)
        if not CREATE_HAS_CACHE_KEY:  # older clients: send it as an extra body field
            kwargs["extra_body"] = {"prompt_cache_key": kwargs.pop("prompt_cache_key")}
        return kwargs

    def _delay(self, retry: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            if retry_after > MAX_RETRY_AFTER_SECONDS:
                return None
            return retry_after + self._rng.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        backoff = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (retry - 1))
        return backoff + self._rng.uniform(0, backoff)

    def draft(self, prompt: Prompt, spec: ProjectSpec, item: WorkItem) -> Outcome:
        client = self.client(spec.llm.timeout_seconds)
        json_mode = self.json_mode(prompt.model)
        image = item.image.url if item.image is not None else None
        if image is not None:
            refused = self.refuses_images(prompt.model)
            if refused is not None:
                return Outcome(status=DraftStatus.ERROR, error_kind="image_refused", attempts=0,
                               error=f"the server refuses images for {prompt.model}: {refused}")
        attempts = retries = 0
        while True:
            attempts += 1
            kwargs = self._create_kwargs(self.request_json(prompt, spec, item.text, json_mode=json_mode, image=image))
            started = time.perf_counter()
            retry_after: float | None = None
            try:
                resp = client.chat.completions.create(**kwargs)
            except openai.APITimeoutError:
                observe.llm_call(prompt.model, time.perf_counter() - started, error="timeout")
                return _failed("timeout", f"no answer within {spec.llm.timeout_seconds:g}s", attempts)
            except openai.APIConnectionError as e:
                observe.llm_call(prompt.model, time.perf_counter() - started, error="connection")
                kind, message, retryable = "other", f"connection error: {e}", True
            except openai.APIStatusError as e:
                code = e.status_code
                observe.llm_call(prompt.model, time.perf_counter() - started, error=status_kind(code))
                message = f"HTTP {code}: {_api_message(e)}"
                if code in (400, 422) and not json_mode and _about_response_format(e):
                    json_mode = True
                    self._remember_json_mode(prompt.model)
                    continue
                if image is not None and code in (400, 415, 422) and _about_images(e):
                    if _model_lacks_vision(e):
                        self._remember_no_images(prompt.model, _api_message(e))
                    return Outcome(status=DraftStatus.ERROR, error_kind="image_refused", attempts=attempts,
                                   error=f"the server refused the image: {message}")
                kind = status_kind(code)
                retryable = code in (408, 409, 429) or code >= 500
                retry_after = _retry_after(e.response)
            else:
                latency_ms = (time.perf_counter() - started) * 1000
                outcome = outcome_from_completion(spec, resp.model_dump(), item.text, attempts=attempts,
                                                  latency_ms=latency_ms)
                observe.llm_call(prompt.model, latency_ms / 1000, prompt_tokens=outcome.prompt_tokens,
                                 completion_tokens=outcome.completion_tokens, cached_tokens=outcome.cached_tokens,
                                 error=None if outcome.status == DraftStatus.OK else outcome.error_kind)
                return outcome
            if not retryable or retries + 1 >= self.max_attempts:
                return _failed(kind, message, attempts)
            retries += 1
            delay = self._delay(retries, retry_after)
            if delay is None:
                return _failed(kind, f"{message} (asked to retry after {retry_after:g}s; gave up)", attempts)
            self._sleep(delay)


def status_kind(code: int) -> str:
    if code == 429:
        return "http_429"
    if code >= 500:
        return "http_5xx"
    return "timeout" if code == 408 else "other"


def _failed(kind: str, message: str, attempts: int) -> Outcome:
    return Outcome(status=DraftStatus.ERROR, error_kind=kind, error=message, attempts=attempts, call_failed=True)


def _api_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(e.message)


def _about_response_format(e: openai.APIStatusError) -> bool:
    text = f"{e.message} {json.dumps(e.body) if e.body is not None else ''}".lower()
    return "response_format" in text or "json_schema" in text


def _error_text(e: openai.APIStatusError) -> str:
    return f"{e.message} {json.dumps(e.body) if e.body is not None else ''}".lower()


def _about_images(e: openai.APIStatusError) -> bool:
    """A 4xx about the image part: the model reads no images, or this image could not be used."""
    text = _error_text(e)
    return any(w in text for w in ("image", "vision", "multimodal", "multi-modal", "content type"))


_NO_VISION = ("only supported by certain models", "does not support image", "not support image", "not a multimodal",
              "not multimodal", "vision is not supported", "image input is not supported", "images are not supported",
              "does not support vision", "invalid content type")


def _model_lacks_vision(e: openai.APIStatusError) -> bool:
    """The refusal is about the model (every image would be refused), not about this one image."""
    text = _error_text(e)
    return any(w in text for w in _NO_VISION)


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def outcome_from_completion(
    spec: ProjectSpec, body: dict[str, Any], text: str, *, attempts: int = 1, latency_ms: float | None = None
) -> Outcome:
    """Validate a chat completion (as a JSON dict) into an Outcome; shared by sync calls and batches."""
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    base: dict[str, Any] = dict(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_ms=latency_ms,
        attempts=attempts,
    )
    choices = body.get("choices") or []
    if not choices:
        return Outcome(status=DraftStatus.ERROR, error_kind="other", error="the answer had no choices", **base)
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content")
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        return Outcome(status=DraftStatus.ERROR, error_kind="refused",
                       error=f"the model refused: {message.get('refusal') or 'content filter'}", raw=content, **base)
    try:
        parsed = parse_output(spec, content, text)
    except DraftProblem as e:
        error = str(e)
        if choice.get("finish_reason") == "length":
            error += " (the answer was cut off at the token limit)"
        return Outcome(status=DraftStatus.ERROR, error_kind=e.kind, error=error, raw=content, **base)
    return Outcome(status=DraftStatus.OK, value=parsed.value, value_key=parsed.value_key,
                   confidence=parsed.confidence, raw=content, **base)


class SimulatedDrafter(BaseDrafter):
    """Offline drafts for the demo, clearly labelled: model "simulated", `simulated=True`.

    On a gold item it answers the gold value with probability `accuracy` (else a different plausible
    value); on other items a deterministic pseudo-random plausible value. No network.
    """

    simulated = True
    MODEL = "simulated"

    def __init__(self, accuracy: float = 0.85, seed: int = 0, latency: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.accuracy, self.seed, self.latency, self._sleep = accuracy, seed, latency, sleep

    def model_for(self, spec: ProjectSpec) -> str:
        return self.MODEL

    def draft(self, prompt: Prompt, spec: ProjectSpec, item: WorkItem) -> Outcome:
        rng = random.Random(f"{self.seed}:{prompt.version}:{item.item_id}")
        if self.latency:
            self._sleep(self.latency)
        gold = item.gold if item.is_gold else None
        if gold is not None and rng.random() < self.accuracy:
            value, confidence = gold, rng.uniform(0.75, 0.99)
        else:
            value = _plausible(spec, item.text, rng)
            for _ in range(5):
                if gold is None or canonical_key(value) != canonical_key(gold):
                    break
                value = _plausible(spec, item.text, rng)
            confidence = rng.uniform(0.4, 0.9)
        value = normalize(spec.task, value, spec, item.text)
        return Outcome(
            status=DraftStatus.OK, value=value, value_key=canonical_key(value), confidence=round(confidence, 3),
            raw=json.dumps({"simulated": True, "value": value}), latency_ms=self.latency * 1000, attempts=1,
            simulated=True,
        )


def _plausible(spec: ProjectSpec, text: str, rng: random.Random) -> Any:
    labels = spec.label_names
    if spec.task is TaskType.CLASSIFICATION:
        return rng.choice(labels)
    if spec.task is TaskType.MULTILABEL:
        return [label for label in labels if rng.random() < 0.3]
    if spec.task is TaskType.SPANS:
        words = [m for m in re.finditer(r"\w{3,}", text) if m.group()[0].isupper()] or list(
            re.finditer(r"\w{3,}", text)
        )
        picked = sorted(rng.sample(words, min(len(words), rng.randint(0, 2))), key=lambda m: m.start())
        return [{"start": m.start(), "end": m.end(), "label": rng.choice(labels)} for m in picked]
    rewrite = " ".join(text.split())[:MAX_REWRITE_CHARS] or "(empty)"
    return rewrite[:1].upper() + rewrite[1:]


_CURRENT: BaseDrafter | None = None


def make_drafter(settings: Settings, *, simulated: bool = False) -> Drafter | SimulatedDrafter | None:
    """The process's drafter: simulated for the offline demo, None without OPENAI_API_KEY."""
    global _CURRENT
    drafter: Drafter | SimulatedDrafter | None
    if simulated:
        drafter = SimulatedDrafter()
    elif not settings.openai_api_key:
        drafter = None
    else:
        drafter = Drafter(settings)
    _CURRENT = drafter
    return drafter


def process_drafter() -> BaseDrafter | None:
    """The drafter `make_drafter` made last in this process (the default for the CLI and jobs)."""
    return _CURRENT


def draft_model(drafter: BaseDrafter | None, spec: ProjectSpec) -> str:
    """The `model` drafts of this project are stored under (what `current_draft` needs)."""
    return drafter.model_for(spec) if drafter is not None else spec.llm.model
