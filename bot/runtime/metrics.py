"""Prometheus metrics: `GET /metrics` when LABELBOT_METRICS=1 (off by default).

What is counted (no user text ever: only action ids, methods, model names, project slugs, error codes):

| metric | labels | what |
|---|---|---|
| `labelbot_clicks_total` | action | button clicks and menu choices (`label.choose:3` counts as `label.choose`) |
| `labelbot_submissions_total` | view | modal submissions (Edit, Reject...) by callback id |
| `labelbot_commands_total` | command | slash commands |
| `labelbot_click_seconds` | | a click from arrival to the end of its listener (histogram) |
| `labelbot_answers_total` | action, kind | answers stored (committed), accept/edit/reject/manual/skip/ambiguous |
| `labelbot_slack_calls_total` | method | Web API calls |
| `labelbot_slack_errors_total` | method, error | failed Web API calls by Slack error code |
| `labelbot_llm_calls_total` | model | chat completions (every attempt) |
| `labelbot_llm_errors_total` | model, kind | failed ones (http_429, http_5xx, timeout, other) |
| `labelbot_llm_seconds` | model | latency (histogram) |
| `labelbot_llm_tokens_total` | model, type | prompt, cached (part of prompt) and completion tokens |
| `labelbot_job_runs_total` | job | scheduled job runs |
| `labelbot_job_failures_total` | job | runs that raised |
| `labelbot_job_seconds` | job | run time (histogram) |
| `labelbot_queue_depth` | project, queue | open items still to hand out (crowd), items waiting for an expert (expert) |
| `labelbot_drafts_ready` | project | drafts ready among the next items to serve (see `bot.services.gauges`) |

Under gunicorn every worker counts in its own process; `labelbot serve --http` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers fork, so a scrape (answered by any
one worker) reports the sum over all of them. The queue gauges are read from the database at scrape
time by the worker that answers, so they need no aggregation.

Counters and histograms live in the process (`prometheus_client`); the code that does the work reports
through `bot.core.observe` hooks, the Bolt app through a global middleware and Bolt's listener
completion handler, and stored answers through SQLAlchemy session events (counted once committed).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bot.core import observe

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger("labelbot.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
_ACTION_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_CLICK_STARTED = "labelbot_click_started"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB_BUCKETS = (0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0)


def enabled(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return env.get("LABELBOT_METRICS", "").strip().lower() in ("1", "true", "yes", "on")


def prepare_multiprocess() -> str | None:
    """In a gunicorn master, before the workers fork: a fresh, empty PROMETHEUS_MULTIPROC_DIR (unless
    one is set already). Returns the directory made here (the caller removes it at exit), else None.
    Must run before anything in this process imports prometheus_client."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    path = tempfile.mkdtemp(prefix="labelbot-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def cleanup_multiprocess(path: str | None) -> None:
    """Remove the directory `prepare_multiprocess` made, and the variable pointing at it."""
    if path:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == path:
            del os.environ[MULTIPROC_ENV]


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit: let the multiprocess files of a dead worker be merged, not mistaken for live."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _bounded(name: Any) -> str:
    """An id as a label value: the family before ':' (label.choose:3 -> label.choose), or 'other'."""
    text = str(name or "").split(":", 1)[0]
    return text if _ACTION_RE.match(text) else "other"


class Metrics:
    """The process's metric objects; an `observe.Observer`. One per process in production (tests may
    make several, each with its own registry)."""

    def __init__(self, deps: Deps | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.deps = deps
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        r = self.registry

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Any:
            return Counter(name, doc, list(labels), registry=r)

        def histogram(name: str, doc: str, labels: Iterable[str], buckets: tuple[float, ...]) -> Any:
            return Histogram(name, doc, list(labels), registry=r, buckets=buckets)

        self.clicks = counter("labelbot_clicks", "Button clicks and menu choices, by action id", ["action"])
        self.submissions = counter("labelbot_submissions", "Modal submissions, by callback id", ["view"])
        self.commands = counter("labelbot_commands", "Slash commands", ["command"])
        self.click_seconds = histogram("labelbot_click_seconds", "A click from arrival to the end of its listener",
                                       (), _LATENCY_BUCKETS)
        self.answers = counter("labelbot_answers", "Answers stored, by action and kind", ["action", "kind"])
        self.slack_calls = counter("labelbot_slack_calls", "Slack Web API calls", ["method"])
        self.slack_errors = counter("labelbot_slack_errors", "Failed Slack Web API calls", ["method", "error"])
        self.llm_calls = counter("labelbot_llm_calls", "LLM chat completion calls", ["model"])
        self.llm_errors = counter("labelbot_llm_errors", "Failed LLM calls", ["model", "kind"])
        self.llm_seconds = histogram("labelbot_llm_seconds", "LLM call latency", ["model"], _LLM_BUCKETS)
        self.llm_tokens = counter("labelbot_llm_tokens", "LLM tokens", ["model", "type"])
        self.job_runs = counter("labelbot_job_runs", "Scheduled job runs", ["job"])
        self.job_failures = counter("labelbot_job_failures", "Scheduled job runs that failed", ["job"])
        self.job_seconds = histogram("labelbot_job_seconds", "Scheduled job run time", ["job"], _JOB_BUCKETS)
        self._gauges = _DatabaseGauges(deps) if deps is not None else None
        if self._gauges is not None and not self.multiprocess:
            r.register(self._gauges)

    # ---- observe.Observer --------------------------------------------------------------------

    def slack_call(self, method: str, seconds: float, error: str | None) -> None:
        method = _bounded(method)
        self.slack_calls.labels(method).inc()
        if error is not None:
            self.slack_errors.labels(method, _bounded(error)).inc()

    def llm_call(self, model: str, seconds: float, prompt_tokens: int, completion_tokens: int,
                 cached_tokens: int, error: str | None) -> None:
        model = str(model)[:100]
        self.llm_calls.labels(model).inc()
        self.llm_seconds.labels(model).observe(seconds)
        if error is not None:
            self.llm_errors.labels(model, _bounded(error)).inc()
        for kind, n in (("prompt", prompt_tokens), ("completion", completion_tokens), ("cached", cached_tokens)):
            if n:
                self.llm_tokens.labels(model, kind).inc(n)

    def job_run(self, job: str, seconds: float, failed: bool) -> None:
        job = _bounded(job)
        self.job_runs.labels(job).inc()
        self.job_seconds.labels(job).observe(seconds)
        if failed:
            self.job_failures.labels(job).inc()

    # ---- Bolt --------------------------------------------------------------------------------

    def request_seen(self, body: dict[str, Any], context: Any) -> None:
        kind = body.get("type")
        if kind == "block_actions":
            for action in body.get("actions") or []:
                self.clicks.labels(_bounded(action.get("action_id") if isinstance(action, dict) else None)).inc()
            context[_CLICK_STARTED] = time.perf_counter()
        elif kind == "view_submission":
            self.submissions.labels(_bounded((body.get("view") or {}).get("callback_id"))).inc()
        elif body.get("command"):
            self.commands.labels(_bounded(str(body["command"]).lstrip("/"))).inc()

    def listener_done(self, context: Any) -> None:
        started = context.get(_CLICK_STARTED) if context is not None else None
        if started is not None:
            self.click_seconds.observe(time.perf_counter() - started)

    def answer_stored(self, action: str, kind: str) -> None:
        self.answers.labels(_bounded(action), _bounded(kind)).inc()

    # ---- exposition --------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition: this process's registry, or every worker's files in multiprocess mode."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        if self._gauges is not None:
            registry.register(self._gauges)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _DatabaseGauges:
    """A collector read at scrape time: queue depth and drafts ready per project."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def describe(self) -> list[Any]:
        return []  # do not collect at registration (the database may not be migrated yet)

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from bot.services.gauges import project_gauges

        depth = GaugeMetricFamily("labelbot_queue_depth", "Items waiting: crowd (open, slots left) and expert",
                                  labels=["project", "queue"])
        ready = GaugeMetricFamily("labelbot_drafts_ready", "Drafts ready among the next items to serve",
                                  labels=["project"])
        up = GaugeMetricFamily("labelbot_database_up", "1 when the gauges could be read from the database")
        try:
            with self.deps.db.read() as s:
                rows = project_gauges(s, self.deps.drafter)
        except Exception:  # the scrape still answers, with the counters; the log has the detail
            log.warning("metrics: could not read the queue gauges", exc_info=True)
            up.add_metric([], 0)
            return [up]
        for row in rows:
            depth.add_metric([row.slug, "crowd"], row.queue_depth)
            depth.add_metric([row.slug, "expert"], row.escalated)
            if row.drafts_ready is not None:
                ready.add_metric([row.slug], row.drafts_ready)
        up.add_metric([], 1)
        return [depth, ready, up]


# ------------------------------------------------------------------------------------------------
# Wiring
# ------------------------------------------------------------------------------------------------

_active: Metrics | None = None
_session_events = threading.Lock()
_session_events_installed = False


def install(deps: Deps, app: Any = None) -> Metrics:
    """Start counting in this process: hooks, the Bolt app's clicks (if given), stored answers."""
    global _active
    metrics = Metrics(deps)
    _active = metrics
    observe.install(metrics)
    _install_answer_events()
    if app is not None:
        instrument_app(app, metrics)
    return metrics


def uninstall(metrics: Metrics) -> None:
    global _active
    if _active is metrics:
        _active = None
        observe.install(None)


def instrument_app(app: Any, metrics: Metrics) -> None:
    """Count requests in a global middleware; time clicks until Bolt's listener completion handler."""

    def count_requests(body: dict[str, Any], context: Any, next: Callable[[], Any]) -> Any:
        try:
            metrics.request_seen(body, context)
        except Exception:  # a metric never refuses a click
            log.debug("metrics middleware failed", exc_info=True)
        return next()

    app.use(count_requests)
    runner = app.listener_runner
    runner.listener_completion_handler = _TimedCompletion(runner.listener_completion_handler, metrics)


class _TimedCompletion:
    """Bolt's listener completion handler, wrapped: observes the click latency, then delegates."""

    def __init__(self, inner: Any, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def handle(self, request: Any, response: Any) -> None:
        try:
            self.metrics.listener_done(getattr(request, "context", None))
        except Exception:  # never in the way of the listener's own completion
            log.debug("metrics completion hook failed", exc_info=True)
        self.inner.handle(request=request, response=response)


def _install_answer_events() -> None:
    """Count Label rows once their transaction commits (a rolled-back click counts nothing)."""
    global _session_events_installed
    with _session_events:
        if _session_events_installed:
            return
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        from storage.models import Label

        def after_flush(session: Session, _flush_context: Any) -> None:
            if _active is None:
                return
            new = [(obj.action, obj.kind) for obj in session.new if isinstance(obj, Label)]
            if new:
                session.info.setdefault("labelbot_new_answers", []).extend(new)

        def after_commit(session: Session) -> None:
            answers = session.info.pop("labelbot_new_answers", None)
            metrics = _active
            if answers and metrics is not None:
                for action, kind in answers:
                    metrics.answer_stored(action, kind)

        def after_rollback(session: Session) -> None:
            session.info.pop("labelbot_new_answers", None)

        event.listen(Session, "after_flush", after_flush)
        event.listen(Session, "after_commit", after_commit)
        event.listen(Session, "after_rollback", after_rollback)
        _session_events_installed = True
