"""Process settings from the environment, read once at the composition root.

The project spec (a project's YAML) lives in `bot.spec`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bot.core.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///labelbot.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


# --------------------------------------------------------------------------------------------
# Process settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    slack_bot_token: str | None = None
    slack_app_token: str | None = None
    slack_signing_secret: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    slack_team_id: str | None = None
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    dm_rate: float = 1.0  # chat.postMessage per second per channel (0: no pacing)
    dm_burst: int = 5
    metrics: bool = False  # LABELBOT_METRICS=1: GET /metrics (Prometheus)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        return cls(
            database_url=get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_api_url=get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
            slack_team_id=get("SLACK_TEAM_ID"),
            slack_client_id=get("SLACK_CLIENT_ID"),
            slack_client_secret=get("SLACK_CLIENT_SECRET"),
            openai_api_key=get("OPENAI_API_KEY"),
            openai_base_url=get("OPENAI_BASE_URL"),
            dm_rate=_number(get("LABELBOT_DM_RATE"), 1.0, "LABELBOT_DM_RATE"),
            dm_burst=int(_number(get("LABELBOT_DM_BURST"), 5, "LABELBOT_DM_BURST")),
            metrics=_flag(get("LABELBOT_METRICS"), "LABELBOT_METRICS"),
        )

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)

    def require_for_serve(self, *, http: bool) -> None:
        """Raise ConfigError naming every missing variable for the chosen mode."""
        missing: list[str] = []
        if not self.oauth_enabled and not self.slack_bot_token:
            missing.append("SLACK_BOT_TOKEN (the xoxb- Bot User OAuth Token from 'OAuth & Permissions')")
        if http:
            if not self.slack_signing_secret:
                missing.append("SLACK_SIGNING_SECRET (from 'Basic Information' > 'App Credentials')")
        elif not self.slack_app_token:
            missing.append(
                "SLACK_APP_TOKEN (an xapp- token with connections:write from 'Basic Information' > "
                "'App-Level Tokens'), or run `labelbot serve --http` instead of Socket Mode"
            )
        if missing:
            raise ConfigError("Set " + "; and ".join(missing) + ".")


def _flag(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}.")


def _number(raw: str | None, default: float, name: str) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}.") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}.")
    return value
