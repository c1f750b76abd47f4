"""The composition root: the only place that builds concrete objects and wires them together.

`build_deps` makes the process's dependencies (database, Slack client, pacer, drafter);
`build_app` makes the Bolt app with every listener. The server, the demo and the tests use both.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot.config import Settings
from bot.core.clock import Clock, SystemClock
from bot.core.errors import ConfigError
from bot.deps import Deps
from bot.services.drafting import make_drafter
from bot.slack.client import log_context_middleware, make_client, observe_calls_middleware
from bot.slack.pacing import ChannelPacer, install_pacing, paced_copy
from storage.db import Database

log = logging.getLogger("labelbot")

class _NoTokenSkippedWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment and, as we hand it a client holding that very
    token, warns that the token "will be unused": true and harmless, but it reads like a problem."""

    message = warning_client_prioritized_and_token_skipped()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


logging.getLogger("slack_bolt.App").addFilter(_NoTokenSkippedWarning())

# Honest: a failure inside a click's unit of work rolls the answer back. Trying again is safe (an answer
# already saved is never recorded twice).
USER_ERROR_MESSAGE = (":warning: Something went wrong on our side, so your last action may not have been saved. "
                      "Please try again.")


def build_deps(settings: Settings, *, clock: Clock | None = None, db: Database | None = None,
               pacer: ChannelPacer | None = None) -> Deps:
    pacer = pacer or ChannelPacer(rate=settings.dm_rate, burst=settings.dm_burst)
    deps = Deps(settings=settings, db=db or Database(settings.database_url), clock=clock or SystemClock(),
                pacer=pacer, drafter=make_drafter(settings))
    if settings.slack_bot_token and not settings.oauth_enabled:
        client = make_client(settings)
        deps.client = paced_copy(client, pacer) if pacer.enabled else client
    return deps


def build_app(deps: Deps, *, socket_mode: bool = False) -> App:
    """The Bolt app with every listener registered (and messages paced when the pacer is on).

    Over HTTP every request is checked against SLACK_SIGNING_SECRET: without it there is no app
    (`ConfigError`), never a stand-in secret. In Socket Mode Slack's websocket authenticates the
    requests, and the app gets a random secret no one knows, so nothing can reach it over HTTP."""
    settings = deps.settings
    secret = settings.slack_signing_secret
    if not secret:
        if not socket_mode:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: labelbot does not serve HTTP requests it cannot "
                              "verify (Basic Information > App Credentials > Signing Secret).")
        secret = secrets.token_hex(32)
    kwargs: dict[str, Any] = dict(
        signing_secret=secret,
        token_verification_enabled=False,
        listener_executor=deps.pool("listener", 16),
        raise_error_for_unhandled_request=False,
        ignoring_self_events_enabled=True,
    )
    if settings.oauth_enabled:
        from bot.slack.oauth import oauth_settings

        kwargs["oauth_settings"] = oauth_settings(deps)
        kwargs["client"] = make_client(settings)  # SLACK_API_URL and retries apply to every workspace's client
    else:
        kwargs["client"] = deps.client or make_client(settings)  # Bolt takes the bot token from it
    if settings.metrics:  # before authorization, so that its auth.test is counted too
        kwargs["before_authorize"] = observe_calls_middleware
    app = App(**kwargs)
    app.use(log_context_middleware)

    @app.error
    def on_error(error: Exception, body: dict, respond: Any, logger: logging.Logger) -> BoltResponse | None:
        logger.exception("listener failed: %s", error)
        if body.get("response_url"):
            try:
                respond(text=USER_ERROR_MESSAGE, response_type="ephemeral", replace_original=False)
            except Exception:  # the original error matters more than the apology
                logger.warning("could not tell the user about the error", exc_info=True)
        return None

    from handlers import register_all

    register_all(app, deps)
    if deps.pacer is not None:
        install_pacing(app, deps.pacer)
    return app
