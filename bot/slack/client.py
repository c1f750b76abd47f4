"""The Web API client every part of labelbot uses, and the Bolt middlewares that shape a request's client
and log context."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.config import Settings
from bot.core import logctx, observe


class ObservedWebClient(WebClient):
    """A WebClient that reports each call (method, time, Slack error code) to `bot.core.observe`."""

    def api_call(self, api_method: str, **kwargs: Any) -> Any:  # type: ignore[override]
        started = time.perf_counter()
        try:
            response = super().api_call(api_method, **kwargs)
        except SlackApiError as e:
            error = e.response.get("error") if e.response is not None else None
            observe.slack_call(api_method, time.perf_counter() - started, str(error or "unknown"))
            raise
        except Exception as e:
            observe.slack_call(api_method, time.perf_counter() - started, type(e).__name__)
            raise
        observe.slack_call(api_method, time.perf_counter() - started, None)
        return response


def make_client(settings: Settings, token: str | None = None) -> WebClient:
    """A Web API client that honours SLACK_API_URL and retries 429 (Retry-After) and 5xx."""
    client = ObservedWebClient(token=token or settings.slack_bot_token, base_url=settings.slack_api_url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(ServerErrorRetryHandler(max_retry_count=2))
    return client


def observed_copy(client: WebClient) -> ObservedWebClient:
    """The same client (token, base URL, timeout, headers, retry handlers), reporting its calls."""
    return ObservedWebClient(
        token=client.token, base_url=client.base_url, timeout=client.timeout, ssl=client.ssl, proxy=client.proxy,
        headers=client.headers, team_id=getattr(client, "team_id", None), logger=client.logger,
        retry_handlers=list(client.retry_handlers),
    )


def observe_calls_middleware(context: Any, next: Callable[[], Any]) -> Any:
    """A Bolt global middleware: the listener's per-request client reports its calls too (Bolt builds a
    plain WebClient for every request). Installed when metrics are on."""
    client = context.get("client")
    if isinstance(client, WebClient) and not isinstance(client, ObservedWebClient):
        context["client"] = observed_copy(client)
    return next()


def _user_of(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id")) if user.get("id") else None
    if body.get("user_id"):
        return str(body["user_id"])
    event = body.get("event")
    if isinstance(event, dict) and isinstance(event.get("user"), str):
        return event["user"]
    return None


def log_context_middleware(body: dict[str, Any], next: Callable[[], Any]) -> Any:
    """A Bolt global middleware: the request's lines (and its listener's) carry a request id and the
    Slack user id (`bot.core.logctx`; the JSON log format writes them)."""
    request = body.get("event_id") if isinstance(body.get("event_id"), str) else None
    logctx.set_request(request or secrets.token_hex(6), _user_of(body))
    return next()
