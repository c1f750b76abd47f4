"""`labelbot demo`: the whole loop offline (see bot.sandbox.demo)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from bot.sandbox.demo import DemoOptions, print_result, run_demo

# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def _drop_token_unused(record: logging.LogRecord) -> bool:
    return "`token` will be unused" not in record.getMessage()


def _quiet_bolt() -> None:
    """build_app hands Bolt both a client and its token; Bolt warns that the token is unused."""
    logger = logging.getLogger("slack_bolt.App")
    if _drop_token_unused not in logger.filters:
        logger.addFilter(_drop_token_unused)


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("labelbot-demo"),
              show_default=True, help="Where the database, report, chart and export go (the previous run's "
                                      "files there are replaced).")
@click.option("--annotators", type=click.IntRange(1, 20), default=6, show_default=True,
              help="Simulated crowd annotators (plus one expert).")
@click.option("--accuracy", type=click.FloatRange(0.3, 1.0), default=0.85, show_default=True,
              help="Their average accuracy (one of them is clearly weaker).")
@click.option("--accept-bias", type=click.FloatRange(0.0, 1.0), default=0.6, show_default=True,
              help="Their tendency to accept a draft even when it is wrong.")
@click.option("--items", type=click.IntRange(1, 300), default=300, show_default=True,
              help="How many of the example project's items to label.")
@click.option("--days", type=click.IntRange(1, 7), default=3, show_default=True,
              help="Simulated working days (the last ones before today).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the simulated people.")
@click.option("--model", help="The LLM model for drafts when OPENAI_API_KEY is set (default: the project's, "
                              "gpt-4o-mini); e.g. a model name your vLLM or Ollama server knows.")
@click.option("--small", is_flag=True, help="A quick run: 30 items, 3 annotators, 2 days (for tests).")
@click.option("--images", is_flag=True, help="Label pictures instead: shapes the demo draws itself, uploaded to "
                                             "the stand-in Slack and drafted by a vision model when "
                                             "OPENAI_API_KEY is set (--model: a vision model).")
def demo(folder: Path, annotators: int, accuracy: float, accept_bias: float, items: int, days: int, seed: int,
         model: str | None, small: bool, images: bool) -> None:
    """Run the whole loop offline: fake Slack, the real app, simulated annotators, report, chart, export."""
    from rich.console import Console

    if small:
        items, annotators, days = min(items, 30), min(annotators, 3), min(days, 2)
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    _quiet_bolt()
    opts = DemoOptions(folder=folder, annotators=annotators, accuracy=accuracy, accept_bias=accept_bias,
                       items=items, seed=seed, days=days, model=model, images=images)
    result = run_demo(opts, console)
    print_result(result, console)


COMMANDS = [demo]
