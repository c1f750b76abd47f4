"""`labelbot doctor`: is this deployment set up right? Each check is a `Check` with a one-line fix.

The checks, in order (a check that depends on an earlier one is skipped, saying why, when that failed):
1. Slack bot token: `auth.test` answers, for a bot user; the workspace and bot user it belongs to.
2. Slack scopes: the token's granted scopes (`x-oauth-scopes`) include every bot scope of app_manifest.yml.
3. The mode: Socket Mode needs an app-level token that opens a connection (`apps.connections.open`);
   HTTP needs SLACK_SIGNING_SECRET (labelbot refuses to serve unverifiable requests).
4. Database reachable, 5. its schema at the migrations' head (`alembic current` against `heads`).
6. LLM server reachable (`models.list`), 7. each project's model known to it (or, with `llm_call`, one
   tiny completion per model).
8. Projects belong to the token's workspace, 9. each report channel exists and the bot is a member.

Nothing here writes anything, to Slack, the LLM server or the database.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.services.projects import list_projects, spec_of
from storage.db import Database, display_url

REINSTALL = ("add them in the app's settings (OAuth & Permissions > Scopes, or paste app_manifest.yml into "
             "App Manifest) and reinstall the app (Install App > Reinstall to Workspace), then use the new bot token")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_LIST_PAGES = 50  # conversations.list pages of 200 when a report channel is given by name


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"  # not applicable, or cannot be checked until an earlier check passes


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None  # one line; set when the check failed (or was skipped for a reason to act on)

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAIL


@dataclass
class DoctorReport:
    mode: str  # "http" | "socket"
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "mode": self.mode, "checks": [{**asdict(c), "status": c.status.value}
                                                               for c in self.checks]}


@dataclass(frozen=True)
class BotToken:
    """A bot token to check: where it comes from (SLACK_BOT_TOKEN, or a workspace's installation) and a
    Web API client that uses it."""

    source: str
    client: Any  # slack_sdk.WebClient


@dataclass
class _Bot:
    token: BotToken
    team_id: str | None = None
    team: str | None = None
    user: str | None = None
    user_id: str | None = None
    scopes: set[str] | None = None


# ------------------------------------------------------------------------------------------------
# Slack
# ------------------------------------------------------------------------------------------------

_AUTH_FIXES = {
    "invalid_auth": "Use the xoxb- Bot User OAuth Token of this app (OAuth & Permissions), copied after the last "
                    "install; check SLACK_API_URL is unset or https://slack.com/api/",
    "not_authed": "Set SLACK_BOT_TOKEN to the xoxb- Bot User OAuth Token (OAuth & Permissions)",
    "token_revoked": "The token was revoked: reinstall the app (Install App) and use the new bot token",
    "account_inactive": "The app was uninstalled or its user deactivated: reinstall it and use the new bot token",
    "token_expired": "The token expired (token rotation is on): turn rotation off or refresh the token",
}


def _slack_error(e: Exception) -> str:
    response = getattr(e, "response", None)
    if response is not None:
        try:
            return str(response.get("error") or "unknown_error")
        except Exception:  # not a SlackResponse: fall through to the exception's text
            pass
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}".rstrip(": ")


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return ", ".join(value) if isinstance(value, list) else str(value)
    return None


def check_bot_token(bot: BotToken, api_url: str) -> tuple[Check, _Bot | None]:
    name = f"Slack bot token ({bot.source})"
    try:
        response = bot.client.auth_test()
    except Exception as e:  # SlackApiError or a connection error: both are the answer to report
        error = _slack_error(e)
        if getattr(e, "response", None) is None:
            return Check(name, Status.FAIL, f"cannot reach Slack at {api_url}: {error}",
                         "Check the network and SLACK_API_URL (unset means https://slack.com/api/)"), None
        return Check(name, Status.FAIL, f"auth.test answered {error}",
                     _AUTH_FIXES.get(error, "Check SLACK_BOT_TOKEN (OAuth & Permissions > Bot User OAuth Token)")), None
    found = _Bot(bot, team_id=response.get("team_id"), team=response.get("team"), user=response.get("user"),
                 user_id=response.get("user_id"))
    granted = _header(response, "x-oauth-scopes")
    if granted is not None:
        found.scopes = {s.strip() for s in granted.split(",") if s.strip()}
    where = f"workspace {found.team} ({found.team_id}), bot user @{found.user} ({found.user_id})"
    if not response.get("bot_id"):
        return Check(name, Status.FAIL, f"{where} is not a bot user: this is a user token",
                     "Use the Bot User OAuth Token (xoxb-...), not a User OAuth Token (xoxp-...)"), found
    return Check(name, Status.OK, where), found


def check_scopes(found: _Bot, required: tuple[str, ...]) -> Check:
    name = f"Slack scopes ({found.token.source})"
    if found.scopes is None:
        return Check(name, Status.SKIP, "Slack did not say which scopes the token has (no x-oauth-scopes header)")
    missing = [s for s in required if s not in found.scopes]
    if missing:
        return Check(name, Status.FAIL, f"missing {', '.join(missing)} (app_manifest.yml asks for them)",
                     f"Missing scopes: {REINSTALL}")
    return Check(name, Status.OK, f"all {len(required)} scopes of app_manifest.yml granted")


def check_mode(settings: Settings, http: bool, app_client_factory: Callable[[str], Any] | None) -> Check:
    if http:
        name = "HTTP request signing"
        if settings.slack_signing_secret:
            return Check(name, Status.OK, "SLACK_SIGNING_SECRET is set: requests to /slack/events are verified")
        return Check(name, Status.FAIL, "SLACK_SIGNING_SECRET is not set: `labelbot serve --http` refuses to start",
                     "Set SLACK_SIGNING_SECRET (Basic Information > App Credentials > Signing Secret)")
    name = "Socket Mode app token"
    token = settings.slack_app_token
    if not token:
        return Check(name, Status.FAIL, "SLACK_APP_TOKEN is not set: Socket Mode cannot connect",
                     "Set SLACK_APP_TOKEN to an xapp- token with connections:write (Basic Information > "
                     "App-Level Tokens), or serve over HTTP (`labelbot doctor --http`, `labelbot serve --http`)")
    if not token.startswith("xapp-"):
        return Check(name, Status.FAIL, "SLACK_APP_TOKEN is not an app-level token (it must start with xapp-)",
                     "Use the App-Level Token (Basic Information > App-Level Tokens), not the bot token")
    if app_client_factory is None:
        return Check(name, Status.OK, "SLACK_APP_TOKEN is set")
    try:
        app_client_factory(token).apps_connections_open(app_token=token)
    except Exception as e:  # the answer is the finding
        error = _slack_error(e)
        fix = {"missing_scope": "Give the app-level token the connections:write scope (Basic Information > "
                                "App-Level Tokens)",
               "not_allowed_token_type": "Use the App-Level Token (xapp-...), not the bot token"}.get(
            error, "Generate a new app-level token with connections:write (Basic Information > App-Level Tokens) "
                   "and turn Socket Mode on (Settings > Socket Mode)")
        return Check(name, Status.FAIL, f"apps.connections.open answered {error}", fix)
    return Check(name, Status.OK, "SLACK_APP_TOKEN opens a Socket Mode connection (apps.connections.open)")


# ------------------------------------------------------------------------------------------------
# Database
# ------------------------------------------------------------------------------------------------


def _with_connect_timeout(url: str, seconds: int = 5) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(seconds)})
        return parsed.render_as_string(hide_password=False)
    return url


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database file that does not exist (connecting would create an empty one)."""
    from pathlib import Path

    try:
        parsed = make_url(url)
    except Exception:  # reported by the database check
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return None if Path(parsed.database).exists() else parsed.database


def check_database(db: Database) -> tuple[Check, Check]:
    where = display_url(db.url)
    try:
        db.ping()
    except Exception as e:  # any failure to connect is the finding
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        reach = Check("Database", Status.FAIL, f"cannot connect to {where}: {first}",
                      "Check DATABASE_URL (user, password, host, port, database) and that the server is up "
                      "(pg_isready -h HOST -p PORT)")
        return reach, Check("Database schema", Status.SKIP, "needs a reachable database")
    reach = Check("Database", Status.OK, f"{where} answers")
    try:
        current, heads = db.schema_revisions()
    except Exception as e:  # e.g. a revision in the database that this code does not know
        return reach, Check("Database schema", Status.FAIL, f"cannot read the schema version: {e}",
                            "Is this database newer than this labelbot? Upgrade labelbot, or point DATABASE_URL "
                            "at labelbot's own database")
    if current == heads:
        return reach, Check("Database schema", Status.OK, f"at {', '.join(heads)} (the latest migration)")
    if not current:
        return reach, Check("Database schema", Status.FAIL, "no labelbot tables: the database was never migrated",
                            "Run `labelbot db upgrade` (`labelbot serve` does it at start)")
    return reach, Check("Database schema", Status.FAIL,
                        f"at {', '.join(current)}, this labelbot expects {', '.join(heads)}",
                        "Run `labelbot db upgrade` (`labelbot serve` does it at start)")


# ------------------------------------------------------------------------------------------------
# LLM
# ------------------------------------------------------------------------------------------------


def _openai_error(e: Exception) -> tuple[str, str]:
    import openai

    if isinstance(e, openai.APIConnectionError):
        return "cannot reach the server", "Check OPENAI_BASE_URL and that the server is running"
    if isinstance(e, openai.AuthenticationError):
        return "the server rejected OPENAI_API_KEY", "Set OPENAI_API_KEY to a valid key for this server"
    if isinstance(e, openai.APIStatusError):
        message = str(e.message).splitlines()[0][:200]
        return f"HTTP {e.status_code}: {message}", "Check OPENAI_BASE_URL and OPENAI_API_KEY"
    return f"{type(e).__name__}: {e}", "Check OPENAI_BASE_URL and OPENAI_API_KEY"


def check_llm(settings: Settings, models: dict[str, list[str]] | None, *, llm_call: bool,
              client: Any = None) -> list[Check]:
    """`models`: model name -> the projects that draft with it (None: projects unreadable)."""
    if not settings.openai_api_key:
        return [Check("LLM server", Status.SKIP, "drafting is off: OPENAI_API_KEY is not set (items are served "
                                                 "without drafts)")]
    import openai

    base = settings.openai_base_url or "https://api.openai.com/v1"
    client = client or openai.OpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url,
                                     max_retries=0, timeout=10)
    served: set[str] | None = None
    try:
        served = {m.id for m in client.models.list()}
        server = Check("LLM server", Status.OK, f"{base} answers ({len(served)} models listed)")
    except openai.NotFoundError:
        server = Check("LLM server", Status.OK if llm_call else Status.SKIP,
                       f"{base} does not list its models (models.list: 404)",
                       None if llm_call else "Run `labelbot doctor --llm-call` to try one tiny completion per model")
    except Exception as e:  # the failure is the finding
        detail, fix = _openai_error(e)
        return [Check("LLM server", Status.FAIL, f"{base}: {detail}", fix),
                Check("LLM models", Status.SKIP, "needs a reachable LLM server")]
    checks = [server]
    if models is None:
        return [*checks, Check("LLM models", Status.SKIP, "needs a readable, migrated database (the projects)")]
    if not models:
        return [*checks, Check("LLM models", Status.SKIP, "no project drafts with an LLM yet")]
    for model, slugs in sorted(models.items()):
        name = f"LLM model {model}"
        used_by = f"project {', '.join(slugs)}"
        fix = ("Set llm.model in the project YAML to a model this server serves, then `labelbot project update "
               "SPEC.yml`")
        if llm_call:
            started = time.perf_counter()
            try:
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say OK."}],
                                               max_completion_tokens=5)
            except Exception as e:  # the failure is the finding
                detail, other_fix = _openai_error(e)
                is_model = isinstance(e, openai.NotFoundError) or "model" in detail.lower()
                checks.append(Check(name, Status.FAIL, f"{used_by}: one completion failed: {detail}",
                                    fix if is_model else other_fix))
                continue
            checks.append(Check(name, Status.OK, f"{used_by}: answered one completion in "
                                                 f"{(time.perf_counter() - started) * 1000:.0f} ms"))
        elif served is None:
            checks.append(Check(name, Status.SKIP, f"{used_by}: the server does not list models",
                                "Run `labelbot doctor --llm-call`"))
        elif model in served:
            checks.append(Check(name, Status.OK, f"{used_by}: served"))
        else:
            known = ", ".join(sorted(served)[:10]) + (" ..." if len(served) > 10 else "")
            checks.append(Check(name, Status.FAIL, f"{used_by}: not among the server's models ({known or 'none'})",
                                fix))
    return checks


# ------------------------------------------------------------------------------------------------
# Projects and report channels
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Project:
    slug: str
    team_id: str
    channel: str | None
    model: str | None  # None: not drafted


def _read_projects(db: Database) -> list[_Project] | None:
    try:
        with db.read() as s:
            out = []
            for p in list_projects(s):
                spec = spec_of(p)
                out.append(_Project(p.slug, p.team_id, spec.report.channel,
                                    spec.llm.model if spec.llm.enabled else None))
            return out
    except Exception:  # an unreachable or unmigrated database was reported by its own check
        return None


def _find_channel(client: Any, ref: str) -> dict[str, Any] | None:
    """The conversation object of a channel id, or of `#name` / `name` (searched with conversations.list)."""
    if _CHANNEL_ID.match(ref):
        return dict(client.conversations_info(channel=ref)["channel"])
    name = ref.lstrip("#")
    cursor = None
    for _ in range(_LIST_PAGES):
        page = client.conversations_list(types="public_channel,private_channel", exclude_archived=False, limit=200,
                                         cursor=cursor)
        for channel in page.get("channels") or []:
            if channel.get("name") == name:
                return dict(channel)
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None
    return None


def check_channels(projects: list[_Project], bots: dict[str, _Bot]) -> list[Check]:
    with_channel = [p for p in projects if p.channel]
    if not with_channel:
        return [Check("Report channels", Status.SKIP, "no project has report.channel set (no daily summary)")]
    checks = []
    for p in with_channel:
        assert p.channel is not None
        name = f"Report channel of {p.slug}"
        bot = bots.get(p.team_id)
        if bot is None:
            checks.append(Check(name, Status.SKIP, f"{p.channel}: no working bot token for workspace {p.team_id}"))
            continue
        try:
            channel = _find_channel(bot.token.client, p.channel)
        except Exception as e:  # a Slack error is the finding
            error = _slack_error(e)
            if error == "missing_scope":
                checks.append(Check(name, Status.FAIL, f"{p.channel}: cannot check, the token lacks channels:read "
                                                       "or groups:read", f"Missing scopes: {REINSTALL}"))
            elif error == "channel_not_found":
                checks.append(Check(name, Status.FAIL, f"{p.channel} does not exist, or is private without the bot",
                                    "Create the channel and /invite @labelbot there, or set report.channel to an "
                                    "existing one (labelbot project update)"))
            else:
                checks.append(Check(name, Status.FAIL, f"{p.channel}: Slack answered {error}",
                                    "Check the bot token and SLACK_API_URL"))
            continue
        if channel is None:
            checks.append(Check(name, Status.FAIL, f"{p.channel}: no such channel the bot can see",
                                "Create it (or fix report.channel, then `labelbot project update`); for a private "
                                "channel, /invite @labelbot there first"))
        elif channel.get("is_archived"):
            checks.append(Check(name, Status.FAIL, f"{p.channel} ({channel.get('id')}) is archived",
                                "Unarchive it, or set report.channel to another channel (labelbot project update)"))
        elif not channel.get("is_member"):
            checks.append(Check(name, Status.FAIL, f"the bot is not a member of #{channel.get('name')} "
                                                   f"({channel.get('id')})",
                                f"In #{channel.get('name')} type /invite @{bot.user or 'labelbot'}"))
        else:
            checks.append(Check(name, Status.OK, f"#{channel.get('name')} ({channel.get('id')}): the bot is a member"))
    return checks


def check_workspaces(projects: list[_Project], bots: dict[str, _Bot], oauth: bool) -> Check:
    if not projects:
        return Check("Projects' workspace", Status.SKIP, "no project yet (`labelbot project create SPEC.yml`)")
    if not bots:
        return Check("Projects' workspace", Status.SKIP, "needs a working bot token")
    stray = sorted({(p.slug, p.team_id) for p in projects if p.team_id not in bots})
    if stray:
        listed = ", ".join(f"{slug} ({team})" for slug, team in stray)
        known = ", ".join(sorted(bots))
        fix = ("Install the app in that workspace (https://HOST/slack/install)" if oauth else
               f"Use that workspace's bot token, or recreate the project with --team {known}")
        return Check("Projects' workspace", Status.FAIL, f"{listed}: not the bot token's workspace ({known})", fix)
    return Check("Projects' workspace", Status.OK, f"all {len(projects)} project(s) in {', '.join(sorted(bots))}")


# ------------------------------------------------------------------------------------------------
# All of it
# ------------------------------------------------------------------------------------------------


def run_checks(settings: Settings, *, http: bool, bots: list[BotToken], required_scopes: tuple[str, ...],
               app_client_factory: Callable[[str], Any] | None = None, llm_call: bool = False,
               db: Database | None = None, llm_client: Any = None) -> DoctorReport:
    """Run every check. `bots`: the bot tokens to check (SLACK_BOT_TOKEN, or each workspace's install with
    OAuth; empty when none is configured). `db` defaults to DATABASE_URL (with a 5 s connect timeout)."""
    report = DoctorReport("http" if http else "socket")
    checks = report.checks
    working: dict[str, _Bot] = {}
    if not bots:
        if settings.oauth_enabled:
            checks.append(Check("Slack bot token", Status.FAIL, "OAuth is on and no workspace has installed the app",
                                "Open https://YOUR-HOST/slack/install to install it (Slack must reach the bot)"))
        else:
            checks.append(Check("Slack bot token", Status.FAIL, "SLACK_BOT_TOKEN is not set",
                                "Set SLACK_BOT_TOKEN to the xoxb- Bot User OAuth Token (OAuth & Permissions), or "
                                "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for several workspaces"))
    for bot in bots:
        check, found = check_bot_token(bot, settings.slack_api_url)
        checks.append(check)
        if found is not None:
            checks.append(check_scopes(found, required_scopes))
            if check.ok and found.team_id:
                working.setdefault(found.team_id, found)
        else:
            checks.append(Check(f"Slack scopes ({bot.source})", Status.SKIP, "needs a working bot token"))
    checks.append(check_mode(settings, http, app_client_factory))

    projects: list[_Project] | None = None
    missing_file = _missing_sqlite_file(settings.database_url) if db is None else None
    if missing_file is not None:
        checks.append(Check("Database", Status.FAIL, f"no database file at {missing_file}",
                            "Run `labelbot db upgrade` to create it, or fix DATABASE_URL"))
        checks.append(Check("Database schema", Status.SKIP, "needs a reachable database"))
    else:
        own_db = db is None
        database = db or Database(_with_connect_timeout(settings.database_url), pool_size=1)
        try:
            reach, schema = check_database(database)
            checks.extend([reach, schema])
            projects = _read_projects(database) if schema.status is Status.OK else None
        finally:
            if own_db:
                database.dispose()
    models: dict[str, list[str]] | None = None
    if projects is not None:
        models = {}
        for p in projects:
            if p.model:
                models.setdefault(p.model, []).append(p.slug)
    checks.extend(check_llm(settings, models, llm_call=llm_call, client=llm_client))
    if projects is None:
        checks.append(Check("Report channels", Status.SKIP, "needs a readable, migrated database (the projects)"))
        return report
    checks.append(check_workspaces(projects, working, settings.oauth_enabled))
    checks.extend(check_channels(projects, working))
    return report


def render_text(report: DoctorReport) -> str:
    marks = {Status.OK: "✔", Status.FAIL: "✘", Status.SKIP: "–"}
    lines = [f"labelbot doctor ({'HTTP' if report.mode == 'http' else 'Socket Mode'})"]
    for c in report.checks:
        lines.append(f"{marks[c.status]} {c.name}: {c.detail}")
        if c.fix and c.status is not Status.OK:
            lines.append(f"    fix: {c.fix}")
    failed = len(report.failed)
    lines.append("All good." if not failed else f"{failed} problem(s) to fix.")
    return "\n".join(lines)


def render_json(report: DoctorReport) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)
