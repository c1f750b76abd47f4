"""The Slack manifest and the registered listeners agree, both ways."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _manifest():
    return yaml.safe_load((ROOT / "app_manifest.yml").read_text(encoding="utf-8"))


def test_manifest_limits_and_scopes():
    m = _manifest()
    assert len(m["display_information"]["name"]) <= 35
    for c in m["features"]["slash_commands"]:
        assert len(c["command"]) <= 32 and c["description"]
    scopes = {"chat:write", "im:write", "commands", "files:write", "users:read", "channels:read", "groups:read"}
    assert set(m["oauth_config"]["scopes"]["bot"]) == scopes
    assert m["settings"]["socket_mode_enabled"] is True
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["features"]["app_home"]["home_tab_enabled"] is True


def test_every_manifest_command_and_event_has_a_listener_and_back(sqlite_bot):
    m = _manifest()
    commands = {c["command"] for c in m["features"]["slash_commands"]}
    events = set(m["settings"]["event_subscriptions"]["bot_events"])
    registered = sqlite_bot.deps.registered
    assert commands == registered["commands"]
    assert events == registered["events"]


def test_listeners_answer_over_http(bot):
    """Each command and event in the manifest reaches a listener (Bolt answers 404 when none matches)."""
    m = _manifest()
    drv = bot.user("U0ANN")
    for c in m["features"]["slash_commands"]:
        assert drv.command(c["command"], "help").status == 200, c["command"]
    for name in m["settings"]["event_subscriptions"]["bot_events"]:
        event = {"type": name, "user": "U0ANN", "tab": "messages", "tokens": {"bot": []}}
        assert drv.event(event).status == 200, name
