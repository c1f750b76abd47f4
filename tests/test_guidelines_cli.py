"""`labelbot guidelines SLUG [show | history | suggest | set]`: the real CLI on a file SQLite database,
with FakeOpenAI over HTTP for the LLM's proposals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import cli, load_commands
from bot.core.guidelines import PLACEHOLDER
from bot.sandbox.fake_openai import FakeOpenAI
from storage.db import Database
from storage.models import Gold, GuidelineNotice
from tests.test_guidelines import Project, _revised


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Database, Project, dict[str, str]]]:
    load_commands()
    db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    db.upgrade()
    project = Project(db, 24)
    project.confused(0, 24, version=1)
    project.answer("t2", "UEXP", "how_to", kind="expert")
    yield db, project, {"DATABASE_URL": db.url, "OPENAI_API_KEY": "", "USER": "alice"}
    db.dispose()


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["guidelines", *args], env=env)
    return result.exit_code, result.output


def test_show_suggest_set_history(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, _project, env = setup
    code, out = run(env, "intents")
    assert code == 0 and out.startswith("# intents: guidelines version 1 (current), published 2026-01-05 08:00 UTC")
    assert out.rstrip().endswith("Pick the customer's main intent.")

    proposal = tmp_path / "proposal.txt"
    code, out = run(env, "intents", "suggest", "--out", str(proposal))
    assert code == 0, out
    assert "revising version 1 (a template: write in the [write here: ...] places)" in out
    assert "- bug / how_to: 16 split rater pairs" in out and "the expert decided: how_to" in out
    assert f"labelbot guidelines intents set {proposal}" in out
    text = proposal.read_text(encoding="utf-8")
    assert PLACEHOLDER in text and "bug or how_to?" in text

    code, out = run(env, "intents", "set", str(proposal))
    assert code == 2 and "Replace the [write here: ...] places" in out and "Traceback" not in out
    proposal.write_text("\n".join(line for line in text.split("\n") if PLACEHOLDER not in line), encoding="utf-8")
    code, out = run(env, "intents", "set", str(proposal), "--promote-quoted", "--summary", "bug vs how_to")
    assert code == 0, out
    assert out.splitlines()[:2] == ["Published version 2 of the guidelines of intents.", "  - bug vs how_to"]
    assert "1 expert decision(s) added to gold." in out and "4 qualified annotator(s) will get one DM" in out
    with db.read() as s:
        assert s.scalar(select(Gold.source)) == "promoted"
        assert len(s.scalars(select(GuidelineNotice)).all()) == 4  # pending: the running bot sends them

    code, out = run(env, "intents", "history")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("v1  2026-01-05 08:00 UTC  by project spec (spec)")
    assert "24 items with 2+ answers, alpha" in lines[0]
    assert lines[1].startswith("v2 (current)") and "by cli:alice (cli)" in lines[1] and "0 items" in lines[1]
    assert lines[2] == "    - bug vs how_to"
    assert "Guideline suggestions: 1 (1 as templates)." in out

    code, out = run(env, "intents", "show", "--version", "1")
    assert code == 0 and "version 1 (replaced)" in out
    code, out = run(env, "intents", "show")
    assert "version 2 (current)" in out and "What changed:\n  - bug vs how_to" in out


def test_errors_are_one_clear_sentence(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _db, _project, env = setup
    for args, words in [
        (("nope",), "No project 'nope'"),
        (("intents", "show", "--version", "3"), "intents has no guideline version 3"),
        (("intents", "set", str(tmp_path / "missing.txt")), "no such file"),
        (("intents", "set", __file__, "--promote", "t999"), "No item 't999' in intents"),
        (("intents", "set", __file__, "--promote-quoted"), "No suggestion for the current version"),
    ]:
        code, out = run(env, *args)
        assert code == 2 and words in out and "Traceback" not in out, (args, out)
    same = tmp_path / "same.txt"
    same.write_text("Pick the customer's main intent.\n", encoding="utf-8")
    code, out = run(env, "intents", "set", str(same))
    assert code == 2 and "This is the text of the current version" in out


def test_suggest_with_the_llm_and_with_it_failing(setup) -> None:  # type: ignore[no-untyped-def]
    _db, _project, env = setup
    with FakeOpenAI(responder=_revised) as fake:
        llm = {**env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}
        code, out = run(llm, "intents", "suggest")
        assert code == 0 and "(written by test-model)" in out
        assert "--- proposed guidelines ---\nPick one label.\nbug or how_to?" in out
        fake.fail_next(503, times=2)
        code, out = run(llm, "intents", "suggest")
    assert code == 0
    assert "warning: the LLM could not write the revision (http_5xx: HTTP 503" in out
    assert "(a template: write in the [write here: ...] places)" in out
