"""Thin Bolt listeners: ack -> parse -> call a service -> build blocks -> Web API.

Each module has `register(app, deps)`; `register_all` wires them all and records which slash commands
and events were registered (`deps.registered`), so a test can hold them against the manifest.
"""

from __future__ import annotations

import importlib
from typing import Any

MODULES = ("events", "labeling", "report", "export", "guidelines", "reminders")


class _Recorder:
    """Forwards to the Bolt app and notes every command and event listener registered."""

    def __init__(self, app: Any, registered: dict[str, set[str]]) -> None:
        self._app = app
        self._registered = registered

    def command(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        self._registered["commands"].add(str(name))
        return self._app.command(name, *args, **kwargs)

    def event(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        self._registered["events"].add(str(name if not isinstance(name, dict) else name.get("type")))
        return self._app.event(name, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._app, attr)


def register_all(app: Any, deps: Any) -> None:
    recorder = _Recorder(app, deps.registered)
    for name in MODULES:
        importlib.import_module(f"handlers.{name}").register(recorder, deps)
