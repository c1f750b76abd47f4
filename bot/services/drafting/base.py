"""Drafting's shared pieces: limits, the unit of work, a call's outcome and a run's statistics."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import openai

from bot.core.enums import DraftStatus
from bot.core.errors import LabelbotError
from bot.spec import ProjectSpec

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PREFETCH_INTERVAL_SECONDS = 5
PREFETCH_LOOP_BUDGET_SECONDS = 60  # the job keeps drafting while a pass hit its cap, up to this long
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
MAX_RETRY_AFTER_SECONDS = 60.0  # a server asking for a longer wait gets the item stored as failed
FAILURE_THRESHOLD = 5  # consecutive failed calls before a project's drafting pauses
PAUSE_BASE_SECONDS = 60.0
PAUSE_MAX_SECONDS = 30 * 60.0
BATCH_MAX_REQUESTS = 50_000
BATCH_DISCOUNT = 0.5  # OpenAI bills Batch API tokens at half price
TERMINAL_BATCH_STATUSES = {"completed", "failed", "expired", "cancelled"}
_TEXT_LIMIT = 4000  # characters of raw output / error text kept per draft
CHUNK = 500  # rows or ids per statement
BATCH_MAX_BYTES = 190 * 1024 * 1024  # the Batch API takes input files up to 200 MB

CREATE_HAS_CACHE_KEY = "prompt_cache_key" in inspect.signature(
    openai.resources.chat.completions.Completions.create
).parameters


class DraftingUnavailable(LabelbotError, RuntimeError):
    """Drafting cannot run (no API key, simulated drafter for a batch...); the message says why."""


# --------------------------------------------------------------------------------------------
# Outcomes and run statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePart:
    """An item's image as the model gets it: a data: URL of the stored file, or the item's https:// URL."""

    url: str
    sha256: str | None = None  # stored files


@dataclass(frozen=True)
class WorkItem:
    item_id: int
    text: str
    is_gold: bool = False
    gold: Any = None  # the gold answer (only the simulated drafter looks at it)
    image: ImagePart | None = None


@dataclass
class Outcome:
    """The result of drafting one item: the columns of its Draft row."""

    status: str
    value: Any = None
    value_key: str | None = None
    confidence: float | None = None
    error_kind: str | None = None
    error: str | None = None
    raw: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    attempts: int = 1
    simulated: bool = False
    call_failed: bool = False  # the API call itself failed (counts towards pausing the project)

    def columns(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "value": self.value,
            "value_key": self.value_key,
            "confidence": self.confidence,
            "error_kind": self.error_kind,
            "error": _cut(self.error),
            "raw": _cut(self.raw),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
            "simulated": self.simulated,
        }


def _cut(s: str | None) -> str | None:
    return s if s is None or len(s) <= _TEXT_LIMIT else s[: _TEXT_LIMIT - 1] + "…"


@dataclass
class DraftRunStats:
    project: str
    model: str = ""
    prompt_version: str = ""
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    released: int = 0  # claimed, then given back undrafted (e.g. drafting paused)
    attempts: int = 0
    repaired_spans: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    latency_ms_total: float = 0.0
    seconds: float = 0.0
    paused: bool = False
    capped: bool = False  # stopped at its cap: more items may be waiting
    simulated: bool = False

    @property
    def drafted(self) -> int:
        return self.ok + sum(self.errors.values())

    def add(self, o: Outcome) -> None:
        if o.status == DraftStatus.OK:
            self.ok += 1
        else:
            self.errors[o.error_kind or "other"] = self.errors.get(o.error_kind or "other", 0) + 1
        self.attempts += o.attempts
        self.prompt_tokens += o.prompt_tokens
        self.cached_tokens += o.cached_tokens
        self.completion_tokens += o.completion_tokens
        self.latency_ms_total += o.latency_ms or 0.0

    def cost(self, spec: ProjectSpec) -> float:
        return token_cost(spec, self.prompt_tokens, self.cached_tokens, self.completion_tokens)

    def summary(self) -> str:
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        parts = [
            f"{self.project}: {self.drafted} drafted ({self.ok} ok"
            + (f"; errors: {errs}" if errs else "") + ")",
            f"model {self.model}" + (" (simulated)" if self.simulated else ""),
            f"prompt {self.prompt_version}",
            f"tokens {self.prompt_tokens} in ({self.cached_tokens} cached) / {self.completion_tokens} out",
            f"{self.seconds:.1f}s",
        ]
        if self.paused:
            parts.append("PAUSED after repeated failures")
        if self.released:
            parts.append(f"{self.released} left for later")
        return "; ".join(parts) + "."

def token_cost(spec: ProjectSpec, prompt: int, cached: int, completion: int) -> float:
    """Dollars for the tokens at the spec's prices (cached input at its own price, else the input price)."""
    price_in = spec.llm.price_per_1m_input
    price_cached = spec.llm.price_per_1m_cached_input
    price_cached = price_in if price_cached is None else price_cached
    return ((prompt - cached) * price_in + cached * price_cached + completion * spec.llm.price_per_1m_output) / 1e6
