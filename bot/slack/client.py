"""The Web API client every part of labelbot uses."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.config import Settings


def make_client(settings: Settings, token: str | None = None) -> WebClient:
    """A Web API client that honours SLACK_API_URL and retries 429 (Retry-After) and 5xx."""
    client = WebClient(token=token or settings.slack_bot_token, base_url=settings.slack_api_url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(ServerErrorRetryHandler(max_retry_count=2))
    return client
