"""Who writes a proposed revision: the project's LLM (`LLMWriter`, through the drafter's `openai`
client configuration: OPENAI_API_KEY, OPENAI_BASE_URL, the spec's model and temperature), or the
offline demo's `SimulatedWriter`. Without either, the suggestion is a template (`compose.template`).

A failed call raises `WriterFailed` with a kind (the drafting error kinds: timeout, http_429,
http_5xx, malformed_json, schema, refused, other); the caller falls back to the template and records
the failure on the suggestion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from bot.core.errors import LabelbotError
from bot.core.guidelines import Evidence
from bot.services.drafting.clients import BaseDrafter, Drafter, SimulatedDrafter, status_kind
from bot.services.guidelines.compose import WRITER_SCHEMA, parse_written, simulated, writer_messages
from bot.spec import ProjectSpec

WRITE_TIMEOUT_SECONDS = 120.0  # a whole text takes longer than one draft
ATTEMPTS = 2
RETRY_SECONDS = 2.0


class WriterFailed(LabelbotError):
    """The model gave no usable revision; `kind` says why (a drafting error kind)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Written:
    text: str
    changes: list[str]
    model: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None


class Writer(Protocol):
    method: str  # "llm" | "simulated"

    def write(self, spec: ProjectSpec, current: str, evidence: Evidence, next_version: int) -> Written: ...


class SimulatedWriter:
    """The demo's writer: a deterministic revision from the evidence, no network (model "simulated")."""

    method = "simulated"
    MODEL = "simulated"

    def write(self, spec: ProjectSpec, current: str, evidence: Evidence, next_version: int) -> Written:
        text, changes = simulated(spec, current, evidence, next_version)
        return Written(text, changes, self.MODEL)


class LLMWriter:
    """Asks the project's model for the revised text with structured outputs (JSON mode for servers
    that refuse a schema), retrying once on 429/5xx/connection errors."""

    method = "llm"

    def __init__(self, drafter: Drafter, *, sleep: Callable[[float], None] = time.sleep,
                 attempts: int = ATTEMPTS) -> None:
        self.drafter = drafter
        self._sleep = sleep
        self.attempts = attempts

    def _body(self, spec: ProjectSpec, messages: list[dict[str, str]], json_mode: bool) -> dict[str, Any]:
        response_format: dict[str, Any] = (
            {"type": "json_object"} if json_mode else
            {"type": "json_schema", "json_schema": {"name": "labelbot_guidelines", "strict": True,
                                                    "schema": WRITER_SCHEMA}}
        )
        return {"model": spec.llm.model, "messages": messages, "temperature": spec.llm.temperature,
                "response_format": response_format}

    def write(self, spec: ProjectSpec, current: str, evidence: Evidence, next_version: int) -> Written:
        timeout = max(spec.llm.timeout_seconds, WRITE_TIMEOUT_SECONDS)
        client = self.drafter.client(timeout)
        messages = writer_messages(spec, current, evidence, next_version)
        json_mode = self.drafter.json_mode(spec.llm.model)
        tries = 0
        while True:
            tries += 1
            started = time.perf_counter()
            try:
                response = client.chat.completions.create(**self._body(spec, messages, json_mode))
            except openai.APITimeoutError:
                raise WriterFailed("timeout", f"no answer within {timeout:g}s") from None
            except openai.APIConnectionError as e:
                kind, message, retryable = "other", f"connection error: {e}", True
            except openai.APIStatusError as e:
                text = f"{e.message} {e.body!r}".lower()
                if e.status_code in (400, 422) and not json_mode and ("response_format" in text or
                                                                       "json_schema" in text):
                    json_mode = True
                    continue
                kind, message = status_kind(e.status_code), f"HTTP {e.status_code}: {e.message}"
                retryable = e.status_code in (408, 409, 429) or e.status_code >= 500
            else:
                return self._parse(response.model_dump(), spec, (time.perf_counter() - started) * 1000)
            if not retryable or tries >= self.attempts:
                raise WriterFailed(kind, message)
            self._sleep(RETRY_SECONDS)

    @staticmethod
    def _parse(body: dict[str, Any], spec: ProjectSpec, latency_ms: float) -> Written:
        usage = body.get("usage") or {}
        choices = body.get("choices") or []
        if not choices:
            raise WriterFailed("other", "the answer had no choices")
        message = choices[0].get("message") or {}
        if message.get("refusal") or choices[0].get("finish_reason") == "content_filter":
            raise WriterFailed("refused", f"the model refused: {message.get('refusal') or 'content filter'}")
        try:
            text, changes = parse_written(message.get("content"))
        except ValueError as e:
            kind = "malformed_json" if "JSON" in str(e) or "no content" in str(e) else "schema"
            cut = " (cut off at the token limit)" if choices[0].get("finish_reason") == "length" else ""
            raise WriterFailed(kind, f"{e}{cut}") from None
        return Written(text, changes, spec.llm.model, int(usage.get("prompt_tokens") or 0),
                       int(usage.get("completion_tokens") or 0), latency_ms)


def writer_for(drafter: BaseDrafter | None) -> Writer | None:
    """The writer that goes with the process's drafter: the LLM's, the demo's, or None (template)."""
    if isinstance(drafter, SimulatedDrafter):
        return SimulatedWriter()
    if isinstance(drafter, Drafter):
        return LLMWriter(drafter)
    return None
