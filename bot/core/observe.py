"""Hooks the running service reports to: clicks, Slack and LLM calls, scheduled jobs.

The code that does the work calls these functions; they do nothing until the runtime installs an
`Observer` (`bot.runtime.metrics` does when LABELBOT_METRICS=1), so the services, the Slack client and
the jobs know nothing about Prometheus. An observer must be cheap and must never raise: a hook that
fails is logged once per kind of failure and otherwise ignored, so metrics can never break a click.

Nothing passed here is user text: methods, action ids, model names, project slugs, error codes.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("labelbot.observe")


class Observer(Protocol):
    def slack_call(self, method: str, seconds: float, error: str | None) -> None: ...

    def llm_call(self, model: str, seconds: float, prompt_tokens: int, completion_tokens: int,
                 cached_tokens: int, error: str | None) -> None: ...

    def job_run(self, job: str, seconds: float, failed: bool) -> None: ...


_observer: Observer | None = None
_failed_kinds: set[str] = set()


def install(observer: Observer | None) -> Observer | None:
    """Make `observer` receive the hooks (None: stop); returns the one it replaces."""
    global _observer
    previous, _observer = _observer, observer
    return previous


def current() -> Observer | None:
    return _observer


def _report(kind: str, exc: Exception) -> None:
    if kind not in _failed_kinds:
        _failed_kinds.add(kind)
        log.warning("metrics hook %s failed (reported once): %s", kind, exc)


def slack_call(method: str, seconds: float, error: str | None = None) -> None:
    """One Web API call: its method, how long it took, and the Slack error code if it failed."""
    observer = _observer
    if observer is not None:
        try:
            observer.slack_call(method, seconds, error)
        except Exception as e:  # metrics never break the call they measure
            _report("slack_call", e)


def llm_call(model: str, seconds: float, *, prompt_tokens: int = 0, completion_tokens: int = 0,
             cached_tokens: int = 0, error: str | None = None) -> None:
    """One chat completion: model, latency, tokens, and an error kind (http_429, timeout...) if it failed."""
    observer = _observer
    if observer is not None:
        try:
            observer.llm_call(model, seconds, prompt_tokens, completion_tokens, cached_tokens, error)
        except Exception as e:  # metrics never break the call they measure
            _report("llm_call", e)


def job_run(job: str, seconds: float, failed: bool) -> None:
    """One run of a scheduled job."""
    observer = _observer
    if observer is not None:
        try:
            observer.job_run(job, seconds, failed)
        except Exception as e:  # metrics never break the job they measure
            _report("job_run", e)
