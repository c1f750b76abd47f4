"""What every `labelbot` command shares: the database, friendly errors, a progress bar."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bot.config import Settings
from bot.core.errors import LabelbotError
from bot.services.projects import ProjectNotFound
from storage.db import Database, normalize_url


class UserError(click.ClickException):
    exit_code = 2


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every `LabelbotError` into one clear message (exit status 2) instead of a traceback. A project
    that is not found also says which database was searched (DATABASE_URL is easy to forget)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabelbotError as e:
            raise UserError(explain(e)) from None

    return wrapper


def explain(error: LabelbotError) -> str:
    """The message of an error for the terminal; a project not found also says which database was searched."""
    if isinstance(error, ProjectNotFound):
        return f"{error} (looked in {which_database()}; set DATABASE_URL to use another database)"
    return str(error)


def which_database(url: str | None = None) -> str:
    """The database a command uses, for people: the URL without its password, and a SQLite file's full path."""
    from sqlalchemy.engine import make_url

    parsed = make_url(normalize_url(url or Settings.from_env().database_url))
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        shown += f" (the file {Path(parsed.database).resolve()})"
    return shown


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
