"""The composition root: the only place that builds concrete objects and wires them together."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.clock import Clock, SystemClock
from bot.config import Settings
from storage.db import Database

log = logging.getLogger("labelbot")


@dataclass
class Deps:
    """Everything a handler or job may need; built once per process."""

    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    client: WebClient | None = None
    drafter: Any = None  # bot.drafting.Drafter, or None when drafting is off
    extras: dict[str, Any] = field(default_factory=dict)


def make_client(settings: Settings, token: str | None = None) -> WebClient:
    """A Web API client that honours SLACK_API_URL and retries 429 (Retry-After) and 5xx."""
    client = WebClient(token=token or settings.slack_bot_token, base_url=settings.slack_api_url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(ServerErrorRetryHandler(max_retry_count=2))
    return client


def build_deps(settings: Settings, *, clock: Clock | None = None, db: Database | None = None) -> Deps:
    db = db or Database(settings.database_url)
    deps = Deps(settings=settings, db=db, clock=clock or SystemClock())
    if settings.slack_bot_token and not settings.oauth_enabled:
        deps.client = make_client(settings)
    from bot.drafting import make_drafter

    deps.drafter = make_drafter(settings)
    return deps


def build_app(deps: Deps) -> App:
    """The Bolt app with every listener registered."""
    settings = deps.settings
    kwargs: dict[str, Any] = dict(
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="listener"),
        raise_error_for_unhandled_request=False,
        ignoring_self_events_enabled=True,
    )
    if settings.oauth_enabled:
        from bot.oauth import oauth_settings

        kwargs["oauth_settings"] = oauth_settings(deps)
        kwargs["client"] = make_client(settings)  # SLACK_API_URL and retries apply to every workspace's client
    else:
        kwargs["client"] = deps.client or make_client(settings)  # Bolt takes the bot token from it
    app = App(**kwargs)

    @app.error
    def on_error(error: Exception, body: dict, respond: Any, logger: logging.Logger) -> BoltResponse | None:
        logger.exception("listener failed: %s", error)
        user_message = ":warning: Something went wrong on our side; nothing you did was lost. Please try again."
        if body.get("response_url"):
            try:
                respond(text=user_message, response_type="ephemeral", replace_original=False)
            except Exception:  # the original error matters more than the apology
                logger.warning("could not tell the user about the error", exc_info=True)
        return None

    from handlers import register_all

    register_all(app, deps)
    return app
