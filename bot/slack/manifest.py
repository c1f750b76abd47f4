"""The Slack app as `app_manifest.yml` describes it (the bot scopes the app asks for).

The file lives at the repository root (users paste it into Slack); `bot/app_manifest.yml` is a link to
it, shipped as package data, so an installed package (the container image) reads the same file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[1] / "app_manifest.yml"


@cache
def bot_scopes(manifest: Path = MANIFEST) -> tuple[str, ...]:
    """The bot scopes declared in the manifest (oauth_config.scopes.bot), in its order."""
    data = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    scopes = ((data.get("oauth_config") or {}).get("scopes") or {}).get("bot") or []
    if not scopes:
        raise ValueError(f"{manifest} declares no bot scopes (oauth_config.scopes.bot)")
    return tuple(str(s) for s in scopes)
