"""Thin Bolt listeners: ack -> parse -> call a service -> build blocks -> Web API.

Each module has `register(app, deps)`; `register_all` wires every module present.
"""

from __future__ import annotations

import importlib
from typing import Any

MODULES = ("events", "labeling", "quiz", "home", "report", "export", "oauth_events")


def register_all(app: Any, deps: Any) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(f"handlers.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"handlers.{name}":
                raise
            continue
        module.register(app, deps)
