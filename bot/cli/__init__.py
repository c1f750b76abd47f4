"""The `labelbot` command line. Every command reads DATABASE_URL (default sqlite:///labelbot.db).

Errors the user can fix are printed as one clear message with exit status 2, never a traceback
(`bot.cli.common.friendly`). Each command group lives in its own module with a `COMMANDS` list; the
modules are imported only when the CLI runs, so that `labelbot import` does not pay for pandas and
matplotlib at start-up, and they import `bot.cli.common`, never this package.
"""

from __future__ import annotations

import importlib

import click

COMMAND_MODULES = (
    "bot.cli.projects", "bot.cli.serve", "bot.cli.doctor", "bot.cli.drafting", "bot.cli.report", "bot.cli.export",
    "bot.cli.demo", "bot.cli.webhooks", "bot.cli.images", "bot.cli.guidelines",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="labelbot")
def cli() -> None:
    """labelbot: human-in-the-loop data labeling in Slack, with LLM drafts and quality reports."""


def load_commands() -> click.Group:
    """Add every module's commands to the group (idempotent); a missing module is an error."""
    if not cli.commands:
        for name in COMMAND_MODULES:
            for command in importlib.import_module(name).COMMANDS:
                cli.add_command(command)
    return cli


def main() -> None:
    load_commands()(prog_name="labelbot")
