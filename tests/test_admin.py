"""What a lead does around a project: `labelbot member list`, member ids, `labelbot items remove`,
`labelbot project archive|unarchive` (and what an archived project looks like in Slack), imports with
other column names, .json and .tsv files, and the warnings and messages that save a support request."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import load_commands
from bot.services.projects import get_project
from storage.db import Database
from storage.models import Assignment, Item, Label, QuizAttempt, RemovedItem
from tests.conftest import TEAM, make_spec
from tests.helpers import add_draft, qualify, seed
from tests.test_frames import T0, Seeder

cli = load_commands()


def run(db: Database, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env={"DATABASE_URL": db.url, "SLACK_BOT_TOKEN": ""})
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


# --- members --------------------------------------------------------------------------------------------


def test_member_list_and_member_ids(database: Database) -> None:
    sd = Seeder(database, now=T0)
    with sd.batch():
        items = [sd.item() for _ in range(3)]
        gold = sd.item(gold="bug")
        sd.member("U0LEADER", tier="lead")
        sd.member("U0EXPERT", tier="expert")
        sd.member("U0NEWBIE", state="new")
        sd.member("U0PAUSED", state="suspended", reason="accuracy on the last 5 check items was 40%",
                  suspended_at=T0)
        for n, item in enumerate(items):
            sd.label(item, "U0ANN", "bug", at=T0 + timedelta(minutes=n))
        sd.label(items[0], "U0PAUSED", None, action="skip", at=T0)
        sd.label(gold, "U0ANN", "bug", kind="honeypot", correct=1.0, at=T0 + timedelta(hours=1))
        sd.label(gold, "U0PAUSED", "billing", kind="honeypot", correct=0.0, at=T0 + timedelta(hours=2))
    lines = run(database, "member", "list", sd.slug).splitlines()
    assert lines[0].split() == ["member", "tier", "state", "answers", "gold", "last", "active", "why"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert [line.split()[0] for line in lines[1:]] == ["U0LEADER", "ULEAD", "U0EXPERT", "U0ANN", "U0NEWBIE",
                                                       "U0PAUSED"]  # leads, experts, then most answers first
    assert rows["U0ANN"].split()[:6] == ["U0ANN", "crowd", "qualified", "3", "100%", "of"]  # 3 answers, 1 check
    assert "2026-01-05" in rows["U0ANN"]  # last active (long ago, so the date)
    assert rows["U0PAUSED"].split()[:5] == ["U0PAUSED", "crowd", "suspended", "0", "0%"]
    assert rows["U0PAUSED"].endswith("accuracy on the last 5 check items was 40%")
    assert rows["U0NEWBIE"].split()[3:6] == ["0", "-", "never"]

    out = run(database, "member", sd.slug, "amara", "--tier", "lead", code=2)
    assert "'amara' is not a Slack member id" in out and "Copy member ID" in out
    out = run(database, "member", sd.slug, "u0abc", code=2)
    assert "(member ids are upper case)" in out
    assert "U0ABCDEF in intents: tier crowd -> expert" in run(database, "member", sd.slug, "U0ABCDEF", "--tier",
                                                              "expert")
    assert "No project 'nope'" in run(database, "member", "list", "nope", code=2)


# --- items remove ------------------------------------------------------------------------------------------


def test_items_remove_all_or_nothing_and_answers_kept(database: Database, clock: Any, tmp_path: Path) -> None:
    spec = make_spec(quiz={"size": 2, "pass_mark": 0.5})
    items = [{"id": f"t{i}", "text": f"text {i}"} for i in range(5)]
    gold = [{"id": "g1", "text": "gold one", "label": "bug"}, {"id": "g2", "text": "gold two", "label": "billing"}]
    seed(database, spec, clock.now(), items=items, gold=gold)
    draft = add_draft(database, "intents", "t1", "bug", clock.now())
    sd_member = "U0ANN"
    qualify(database, "intents", sd_member, clock.now())
    from bot.services.labeling import next_task, record_answer
    from bot.services.labeling.quiz import start_quiz
    from bot.services.projects import ensure_member

    with database.session() as s:
        project = get_project(s, "intents")
        member = ensure_member(s, project, sd_member, clock.now())
        task = next_task(s, project, member, clock.now(), database.dialect)
        record_answer(s, team_id=TEAM, user_id=sd_member, assignment_id=task.assignment_id, action="choose",
                      value="billing", now=clock.now())  # the label, by name
        answered = task.item_external_id
        start_quiz(s, project, "U0QUIZ", clock.now())  # a running quiz asks both gold items
    assert draft

    out = run(database, "items", "remove", "intents", "t3", "nope", code=2)
    assert "Nothing was removed: 1 id(s) are not items of intents: 'nope'." in out
    out = run(database, "items", "remove", "intents", "t3", answered, code=2)
    assert f"Nothing was removed: 1 item(s) already have answers: '{answered}' (1)" in out
    assert "--with-answers" in out
    assert _count(database, Item) == 7

    assert run(database, "items", "remove", "intents", "t3") == "Removed 1 item(s) from intents.\n"
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# the ones to go\n{answered}\ng1\n", encoding="utf-8")
    out = run(database, "items", "remove", "intents", "--file", str(ids), "--with-answers")
    assert out.startswith("Removed 2 item(s) from intents; 1 of them gold; their 1 label(s) kept in the "
                          "removed_items audit table; 1 running quiz(zes) abandoned")
    with database.read() as s:
        kept = {r.external_id: r for r in s.scalars(select(RemovedItem))}
        assert set(kept) == {answered, "g1"}
        (row,) = kept[answered].labels
        assert (row["user"], row["kind"], row["action"], row["value"]) == (sd_member, "production", "manual", "billing")
        assert kept["g1"].gold == {"value": "bug", "explanation": None, "source": "import"}
        assert s.scalar(select(func.count()).select_from(Label)) == 0  # the label went with its item...
        assert s.scalar(select(QuizAttempt.status)) == "abandoned"  # ...and the quiz that would ask g1
        assert s.scalar(select(func.count()).select_from(Assignment).where(Assignment.item_id.is_(None))) == 0
    csv = tmp_path / "ids.csv"
    csv.write_text("ticket,note\nt4,x\n", encoding="utf-8")
    out = run(database, "items", "remove", "intents", "--file", str(csv), code=2)
    assert "the file has no 'id' column (the item ids); its columns are 'ticket', 'note'" in out
    assert run(database, "items", "remove", "intents", "--file", str(csv), "--id-column", "ticket").startswith(
        "Removed 1 item(s)")
    assert "on the command line or with --file" in run(database, "items", "remove", "intents", code=2)


def _count(db: Database, model: Any) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- archive ------------------------------------------------------------------------------------------------


def test_archived_projects_serve_nothing_and_keep_their_data(bot: Any) -> None:
    spec = make_spec(redundancy=2)
    seed(bot.db, spec, bot.clock.now(), items=[{"id": f"t{i}", "text": f"text {i}"} for i in range(3)])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    example = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    ann.click(example, "label.choose:1")
    bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 2)
    open_example = bot.fake.last_message(ann.dm)  # served, not answered yet

    out = run(bot.db, "project", "archive", "intents")
    assert "Archived 'intents'" in out and "1 open example(s) taken back" in out
    with bot.db.read() as s:
        assert s.scalar(select(func.sum(Item.slots))) == 5  # 2 + 2 + 2 minus the one answer: the lease came back

    ann.click(open_example, "label.choose:0")
    bot.fake.wait_for(lambda: any("nothing was recorded" in str(r["payload"].get("text")) for r in bot.fake.responses))
    ann.command("/label", "intents")
    bot.fake.wait_for(lambda: any("*Support intents* is archived: it takes no more labels" in
                                  str(r["payload"].get("text")) for r in bot.fake.responses))
    ann.command("/label")
    bot.fake.wait_for(lambda: any("no labeling projects in this workspace" in str(r["payload"].get("text"))
                                  for r in bot.fake.responses))
    ann.app_home_opened()
    home = bot.fake.wait_for(lambda: bot.fake.home("U0ANN"))
    assert "Support intents" not in json.dumps(home)
    assert bot.deps.wait_idle()
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 1  # nothing recorded after archiving
    assert "(archived)" in run(bot.db, "project", "list")
    show = run(bot.db, "project", "show", "intents")
    assert "ARCHIVED" in show and "done: 1 answer, 0 skips" in show  # the data is all there
    assert run(bot.db, "report", "intents", "--no-names").startswith("Quality report: Support intents")

    assert "'intents' is active again" in run(bot.db, "project", "unarchive", "intents")
    before = len(bot.fake.messages(ann.dm))
    ann.command("/label", "intents")
    bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == before + 1)


# --- imports ------------------------------------------------------------------------------------------------


def test_imports_map_columns_read_json_and_tsv_and_name_the_columns_once(database: Database, clock: Any,
                                                                         tmp_path: Path) -> None:
    seed(database, make_spec(), clock.now())
    csv = tmp_path / "tickets.csv"
    csv.write_text("ticket_id,body,channel\nT-1,I was charged twice,email\nT-2,The app crashes,chat\n",
                   encoding="utf-8")
    out = run(database, "import", "intents", str(csv), code=2)
    assert out.count("problem") == 1 and "1 problem(s)" in out
    assert ("the file has no 'id' column (the item ids) and no 'text' column (the texts); its columns are "
            "'ticket_id', 'body', 'channel'. Name them with --id-column and --text-column") in out
    assert "2 new" in run(database, "import", "intents", str(csv), "--id-column", "ticket_id", "--text-column", "body")
    with database.read() as s:
        item = s.scalar(select(Item).where(Item.external_id == "T-1"))
        assert (item.text, item.meta) == ("I was charged twice", {"channel": "email"})

    array = tmp_path / "items.json"
    array.write_text('[\n  {"id": "j1", "text": "one"},\n  {"id": "j2",\n   "text": ""},\n  {"id": "j3"}\n]\n',
                     encoding="utf-8")
    out = run(database, "import", "intents", str(array), code=2)
    assert "line 3: field 'text' is empty" in out and "line 5: field 'text' is missing" in out
    array.write_text('[{"id": "j1", "text": "one"}, {"id": "j2", "text": "two"}]', encoding="utf-8")
    assert "2 new" in run(database, "import", "intents", str(array))
    array.write_text('{"id": "j1", "text": "one"}', encoding="utf-8")
    assert "must hold one array of objects" in run(database, "import", "intents", str(array), code=2)

    tsv = tmp_path / "items.tsv"
    tsv.write_text("id\ttext\tlang\nv1\tHola, necesito ayuda\tes\n", encoding="utf-8")
    assert "1 new" in run(database, "import", "intents", str(tsv))
    with database.read() as s:
        assert s.scalar(select(Item.meta).where(Item.external_id == "v1")) == {"lang": "es"}

    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "g1", "text": "refund please", "label": "Billing"}\n'
                    '{"id": "g2", "text": "it crashes", "label": "bugs"}\n', encoding="utf-8")
    out = run(database, "gold", "intents", str(gold), code=2)
    assert "line 1: field 'label': unknown label 'Billing' (did you mean 'billing'?)" in out
    assert "line 2: field 'label': unknown label 'bugs' (allowed: billing, bug, feature)" in out


def test_spec_names_the_columns(database: Database, clock: Any, tmp_path: Path) -> None:
    seed(database, make_spec(**{"import": {"columns": {"id": "key", "text": "message"}}}), clock.now())
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"key": "k1", "message": "hello"}\n', encoding="utf-8")
    assert "1 new" in run(database, "import", "intents", str(rows))
    rows.write_text('{"id": "k2", "text": "hello"}\n', encoding="utf-8")
    assert "the file has no 'key' column" in run(database, "import", "intents", str(rows), code=2)
    assert "1 new" in run(database, "import", "intents", str(rows), "--id-column", "id", "--text-column", "text")


def test_create_warns_about_the_gold_pool_and_not_found_names_the_database(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'admin.db'}"
    spec = tmp_path / "spec.yml"
    spec.write_text("slug: demo\nname: Demo\ntask: classification\nlabels: [a, b]\nquiz: {size: 10}\n",
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["project", "create", str(spec), "--team", "T0X"], env={"DATABASE_URL": db_url})
    assert result.exit_code == 0
    assert ("warning: demo has no gold items yet and quiz.size is 10: nobody can take the quiz, so nobody can "
            "start labeling, until you import at least 10 with `labelbot gold demo FILE`") in result.stderr
    result = CliRunner().invoke(cli, ["report", "nope"], env={"DATABASE_URL": db_url})
    assert result.exit_code == 2
    assert f"No project 'nope'. Known projects: demo. (looked in {db_url} (the file {tmp_path / 'admin.db'})" \
        in result.output
