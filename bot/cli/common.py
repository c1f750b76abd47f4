"""What every `labelbot` command shares: the database, friendly errors, a progress bar."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from bot.config import Settings
from bot.core.errors import LabelbotError
from storage.db import Database


class UserError(click.ClickException):
    exit_code = 2


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every `LabelbotError` into one clear message (exit status 2) instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabelbotError as e:
            raise UserError(str(e)) from None

    return wrapper


def open_db(upgrade: bool = True) -> Database:
    settings = Settings.from_env()
    db = Database(settings.database_url)
    if upgrade:
        db.upgrade()
    return db


def progress_bar(total: int | None, description: str):
    """A rich progress bar on an interactive terminal; silent otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=not sys.stderr.isatty(), transient=True,
    )
    task = progress.add_task(description, total=total)
    return progress, (lambda n: progress.advance(task, n))
