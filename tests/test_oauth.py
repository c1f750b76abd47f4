"""Several workspaces: the OAuth install flow with database stores, per-workspace tokens, isolation.

The app is built by the composition root with SLACK_CLIENT_ID/SECRET set (bot.oauth.oauth_settings)
and served over HTTP; the fake Slack answers oauth.v2.access and knows one bot token per workspace.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import func, select

from bot.app import Deps
from bot.config import Settings
from bot.runtime.server import Runtime
from bot.sandbox.driver import Driver
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.http import Request, Response, serve_wsgi
from bot.slack.oauth import bot_scopes
from storage.models import Assignment, Label
from tests.conftest import SIGNING_SECRET, make_spec
from tests.helpers import qualify, seed

TEAM_A, TOKEN_A = "T0TEST", "xoxb-test"
TEAM_B, TOKEN_B = "T0B", "xoxb-team-b"
CLIENT_ID, CLIENT_SECRET = "111.222", "client-secret"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class WorkspacesFakeSlack(FakeSlack):
    """FakeSlack with a second workspace: its bot token is accepted and auth.test answers for it;
    oauth.v2.access installs the app there. `tokens` records (method, token) for every call."""

    def __init__(self) -> None:
        super().__init__(bot_token=TOKEN_A, team_id=TEAM_A)
        self.tokens: list[tuple[str, str | None]] = []
        self.oauth_codes: list[str] = []

    def handle(self, request: Request) -> Response:
        method = request.path.removeprefix("/api/") if request.path.startswith("/api/") else None
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if method == "oauth.v2.access":
            params = request.form()
            self.oauth_codes.append(params.get("code", ""))
            if params.get("code") != "good-code":
                return Response(200, {"ok": False, "error": "invalid_code"})
            return Response(200, {
                "ok": True, "access_token": TOKEN_B, "token_type": "bot", "scope": ",".join(bot_scopes()),
                "bot_user_id": "U0BOTB", "app_id": self.app_id, "team": {"id": TEAM_B, "name": "Team B"},
                "enterprise": None, "authed_user": {"id": "U0BOSS"}, "is_enterprise_install": False,
            })
        if method is not None:
            with self._cond:
                self.tokens.append((method, token))
        if token == TOKEN_B:
            if method == "auth.test":
                return Response(200, {"ok": True, "url": "https://team-b.slack.com/", "team": "Team B",
                                      "user": "labelbot", "team_id": TEAM_B, "user_id": "U0BOTB", "bot_id": "B0BOTB",
                                      "is_enterprise_install": False})
            request.headers["authorization"] = f"Bearer {TOKEN_A}"  # one message store for both workspaces
        return super().handle(request)


@pytest.fixture
def oauth_bot(database: Any, clock: Any) -> Iterator[Any]:
    with WorkspacesFakeSlack() as fake:
        settings = Settings(
            database_url=database.url, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake.api_url,
            slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET,
        )
        runtime = Runtime.build(settings, scheduler=False, deps=Deps(settings=settings, db=database, clock=clock))
        with serve_wsgi(runtime.wsgi) as base:
            yield base, fake, runtime


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def _install_team_b(base: str) -> None:
    status, page, headers = _get(f"{base}/slack/install")
    assert status == 200
    url = re.search(r'href="(https://slack.com/oauth/v2/authorize\?[^"]+)"', page).group(1).replace("&amp;", "&")
    assert f"client_id={CLIENT_ID}" in url and "scope=chat:write,im:write,commands,files:write,users:read" in url
    state = re.search(r"state=([^&]+)", url).group(1)
    cookie = headers["Set-Cookie"].split(";")[0]
    status, page, _ = _get(f"{base}/slack/oauth_redirect?code=good-code&state={state}", {"Cookie": cookie})
    assert status == 200, page
    # A replayed redirect (the state was consumed) installs nothing.
    status, _, _ = _get(f"{base}/slack/oauth_redirect?code=good-code&state={state}", {"Cookie": cookie})
    assert status in (400, 401)


def test_install_flow_stores_the_workspace_in_the_database(oauth_bot):
    base, fake, runtime = oauth_bot
    store = runtime.deps.installation_store
    assert store.find_bot(enterprise_id=None, team_id=TEAM_B) is None
    _install_team_b(base)
    bot = store.find_bot(enterprise_id=None, team_id=TEAM_B)
    assert (bot.bot_token, bot.bot_id, bot.bot_user_id) == (TOKEN_B, "B0BOTB", "U0BOTB")
    assert fake.oauth_codes == ["good-code"]  # the replay never reached Slack
    client = runtime.deps.client_for_team(TEAM_B)
    assert client.token == TOKEN_B and client.base_url == fake.api_url
    assert runtime.deps.client_for_team("T0NOBODY") is None


def test_a_click_from_another_workspace_is_refused_and_writes_nothing(oauth_bot, database, clock):
    base, fake, runtime = oauth_bot
    store = runtime.deps.installation_store
    store.save(Installation(app_id=fake.app_id, team_id=TEAM_A, bot_token=TOKEN_A, bot_id="B0BOT",
                            bot_user_id="U0BOT", bot_scopes=list(bot_scopes()), user_id="U0LEAD",
                            installed_at=datetime.now(UTC).timestamp()))
    _install_team_b(base)
    seed(database, make_spec(), clock.now(), items=[{"id": "a1", "text": "Refund please"},
                                                      {"id": "a2", "text": "App crashes"}])
    qualify(database, "intents", "U0ANN", clock.now())
    url = f"{base}/slack/events"
    ann = Driver(url, SIGNING_SECRET, fake, TEAM_A, "U0ANN", "ann")
    assert ann.command("/label").status == 200
    msg = fake.wait_for(lambda: fake.last_message(ann.dm))
    assert ("chat.postMessage", TOKEN_A) in fake.tokens  # workspace A's token for workspace A's DM

    # The same user id and a user of workspace B replay Ann's button from workspace B.
    for forger in (Driver(url, SIGNING_SECRET, fake, TEAM_B, "U0ANN", "ann"),
                   Driver(url, SIGNING_SECRET, fake, TEAM_B, "U0BOB", "bob")):
        assert forger.click(msg, "label.choose:0").status == 200
    fake.wait_for(lambda: sum("not yours" in str(r["payload"]) for r in fake.responses) == 2)
    assert ("auth.test", TOKEN_B) in fake.tokens  # the requests were authorized as workspace B
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 0
        assert s.scalars(select(Assignment.status)).all() == ["open"]
    assert len(fake.messages(ann.dm)) == 1  # nothing replaced, nothing new

    # Workspace B sees none of workspace A's projects.
    bob = Driver(url, SIGNING_SECRET, fake, TEAM_B, "U0BOB", "bob")
    bob.command("/label")
    fake.wait_for(lambda: any("no labeling projects in this workspace" in str(r["payload"]) for r in fake.responses))

    # Ann's own click still works.
    ann.click(msg, "label.choose:0")
    fake.wait_for(lambda: len(fake.messages(ann.dm)) == 2)
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 1


def test_uninstall_deletes_the_workspace_installation(oauth_bot):
    base, fake, runtime = oauth_bot
    store = runtime.deps.installation_store
    _install_team_b(base)
    driver = Driver(f"{base}/slack/events", SIGNING_SECRET, fake, TEAM_B, "U0BOSS", "boss")
    assert driver.event({"type": "app_uninstalled"}).status == 200
    fake.wait_for(lambda: store.find_bot(enterprise_id=None, team_id=TEAM_B) is None)
    assert runtime.deps.client_for_team(TEAM_B) is None
