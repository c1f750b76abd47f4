"""Several workspaces: the OAuth install flow, with installations and OAuth states in our database.

With SLACK_CLIENT_ID and SLACK_CLIENT_SECRET set, `bot.app.build_app` hands `oauth_settings(deps)` to
Bolt: `/slack/install` starts an install, `/slack/oauth_redirect` finishes it, and every request is
authorized with the bot token stored for its workspace. The stores live in the same database as the
rest (SQLAlchemy stores, not Bolt's default files, which break across replicas).

`deps` gets:
- `installation_store`: handlers/events.py deletes installs on app_uninstalled / tokens_revoked;
- `client_for_team(team_id) -> WebClient | None`: a client with that workspace's bot token, for
  jobs that post outside a request (bot.reports uses it for the daily summaries).
"""

from __future__ import annotations

import logging

from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from bot.deps import Deps
from bot.slack.client import make_client
from bot.slack.manifest import bot_scopes
from bot.slack.pacing import paced_copy
from storage.locks import startup_lock

log = logging.getLogger("labelbot.oauth")

STATE_EXPIRATION_SECONDS = 600
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
def stores(deps: Deps) -> tuple[SQLAlchemyInstallationStore, SQLAlchemyOAuthStateStore]:
    """The installation and state stores on deps.db's engine, their tables created if missing."""
    settings = deps.settings
    engine = deps.db.engine
    assert settings.slack_client_id, "OAuth needs SLACK_CLIENT_ID"
    installations = SQLAlchemyInstallationStore(client_id=settings.slack_client_id, engine=engine)
    states = SQLAlchemyOAuthStateStore(expiration_seconds=STATE_EXPIRATION_SECONDS, engine=engine)
    # Replicas (and gunicorn workers) start together: create the tables one process at a time.
    with startup_lock(deps.db, "oauth-tables"):
        installations.create_tables()
        states.create_tables()
    return installations, states


def client_for_team(deps: Deps, store: SQLAlchemyInstallationStore, team_id: str) -> WebClient | None:
    """A Web API client with the bot token installed in `team_id` (None when not installed)."""
    bot = store.find_bot(enterprise_id=None, team_id=team_id)
    if bot is None or not bot.bot_token:
        return None
    client = make_client(deps.settings, token=bot.bot_token)
    pacer = deps.pacer
    if pacer is not None and pacer.enabled:
        return paced_copy(client, pacer)
    return client


def oauth_settings(deps: Deps) -> OAuthSettings:
    settings = deps.settings
    if not settings.oauth_enabled:
        raise ValueError("oauth_settings needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
    installations, states = stores(deps)
    deps.installation_store = installations
    deps.client_for_team = lambda team_id: client_for_team(deps, installations, team_id)
    oauth = OAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
        scopes=list(bot_scopes()),
        user_scopes=[],
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=installations,
        state_store=states,
        state_expiration_seconds=STATE_EXPIRATION_SECONDS,
    )
    # Bolt's default authorize calls auth.test on every request; remember the answer per token
    # (the installation is still looked up each time, so an uninstall takes effect at once).
    oauth.authorize = InstallationStoreAuthorize(
        logger=logging.getLogger("slack_bolt.authorize"),
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        token_rotation_expiration_minutes=oauth.token_rotation_expiration_minutes,
        installation_store=installations,
        bot_only=oauth.installation_store_bot_only,
        cache_enabled=True,
        user_token_resolution=oauth.user_token_resolution,
    )
    return oauth
