"""`labelbot demo`: the whole labeling loop on this machine, offline, in under a minute.

What runs is the real thing: the Bolt app built by `bot.app.build_app`, served over HTTP on
127.0.0.1 (the same code path as the tests), a fresh SQLite database, and the fake Slack of
`bot.sandbox`. Simulated people (`bot.sandbox.annotators`) read their DMs there and click like a
person: they take the quiz (some fail and are told so), label with drafts and blind controls, skip
and flag; an expert adjudicates the escalations. Drafts come from the LLM when OPENAI_API_KEY is set,
otherwise from the simulated drafter, labelled as simulated wherever they show.

Time is simulated: a fake clock moves by each person's thinking time, and the run spans a few
working days that end today, so the stored seconds, the daily trend and `labelbot report` look like
a real project's. The outputs (database, report, chart, export) go to `./labelbot-demo/`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEMO_DATA = Path(__file__).parent / "demo_data"
DB_NAME = "labelbot-demo.db"
TEAM = "T0DEMO"
BOT_TOKEN = "xoxb-demo-not-a-real-token"
# The demo's app listens on 127.0.0.1: a fresh random secret per run, never a constant anyone could sign with.
SIGNING_SECRET = secrets.token_hex(32)
LEAD = "U0LEAD"
REPORT_TEXT, REPORT_JSON, CHART = "report.txt", "report.json", "report.png"
EXPORT, RAW_EXPORT = "labels.jsonl", "labels-raw.jsonl"
OUTPUTS = (REPORT_TEXT, REPORT_JSON, CHART, EXPORT, RAW_EXPORT, "items.jsonl", "gold.jsonl", "project.yml")
REAL_SECONDS_PER_SIMULATED = 0.004  # 10 s of thinking: 40 ms of wall time
SIMULATED_BANNER = (
    "Drafts in this demo come from the simulated drafter (demo), not a real model: "
    "set OPENAI_API_KEY (and OPENAI_BASE_URL for vLLM, Ollama or LiteLLM) to draft with an LLM."
)

log = logging.getLogger("labelbot.demo")


@dataclass
class DemoOptions:
    folder: Path = Path("labelbot-demo")
    annotators: int = 6
    accuracy: float = 0.85
    accept_bias: float = 0.6
    items: int = 300
    seed: int = 7
    days: int = 3
    drafter_accuracy: float = 0.85
    model: str | None = None  # the LLM's model name when OPENAI_API_KEY is set


@dataclass
class DemoResult:
    folder: Path
    seconds: float
    simulated: bool
    report_text: str
    chart: Path | None
    export: Path | None
    events: list[str] = field(default_factory=list)
    day_lines: list[str] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    drafting: str = ""
    example: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# The folder
# --------------------------------------------------------------------------------------------------


def prepare_folder(folder: Path, n_items: int) -> Path:
    """Create the folder, remove the previous run's database and outputs (only files the demo writes),
    and copy the example project there (the first `n_items` items)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", *OUTPUTS):
        (folder / name).unlink(missing_ok=True)
    shutil.copyfile(DEMO_DATA / "project.yml", folder / "project.yml")
    shutil.copyfile(DEMO_DATA / "gold.jsonl", folder / "gold.jsonl")
    lines = [line for line in (DEMO_DATA / "items.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    (folder / "items.jsonl").write_text("\n".join(lines[:n_items]) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------------------------------
# Drafts
# --------------------------------------------------------------------------------------------------


def _demo_drafter_class() -> type:
    from bot.services.drafting import SimulatedDrafter

    class DemoDrafter(SimulatedDrafter):
        """The simulated drafter, reading the demo's answer key so its drafts look like a decent model's:
        right with probability `accuracy` on items too (the base class knows only gold answers)."""

        def __init__(self, key: Any, accuracy: float, seed: int) -> None:
            super().__init__(accuracy=accuracy, seed=seed)
            self.key = key

        def draft(self, prompt: Any, spec: Any, item: Any) -> Any:
            outcome = super().draft(prompt, spec, item)
            truth = None if item.is_gold else self.key.lookup(item.text)
            if truth is None:
                return outcome
            from bot.core.values import canonical_key
            from bot.sandbox.annotators import CONFUSIONS

            rng = random.Random(f"demo:{self.seed}:{item.item_id}")
            if rng.random() < self.accuracy:
                value = truth.alt if truth.ambiguous and truth.alt and rng.random() < 0.4 else truth.label
                confidence = rng.uniform(0.6, 0.98)
            else:
                wrong = [x for x in CONFUSIONS.get(truth.label, []) if x in spec.label_names]
                value = rng.choice(wrong or [x for x in spec.label_names if x != truth.label])
                confidence = rng.uniform(0.45, 0.9)
            return dataclasses.replace(
                outcome, value=value, value_key=canonical_key(value), confidence=round(confidence, 3),
                raw=json.dumps({"simulated": True, "value": value}),
            )

    return DemoDrafter


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Active:
    """How many simulated people are working at once (their thinking time overlaps)."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        with self._lock:
            return max(1, self._n)

    def __enter__(self) -> _Active:
        with self._lock:
            self._n += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._n -= 1


def _counts(db: Any, slug: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from storage.models import Item, Project

    with db.read() as s:
        pid = s.scalar(select(Project.id).where(Project.slug == slug))
        rows = s.execute(
            select(Item.status, func.count()).where(Item.project_id == pid).group_by(Item.status)
        ).all()
    return {str(k): int(v) for k, v in rows}


def run_demo(opts: DemoOptions, console: Any, *, live: bool = True) -> DemoResult:
    """Run the demo end to end and write its outputs; `console` is a rich Console."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from sqlalchemy import select

    from bot.app import build_app, build_deps
    from bot.config import Settings
    from bot.core.clock import FakeClock
    from bot.core.enums import Tier
    from bot.jobs import expire_old_leases
    from bot.sandbox.annotators import Annotator, AnswerKey, DemoSlack, Tally, make_personas
    from bot.sandbox.driver import Driver
    from bot.sandbox.http import serve_wsgi
    from bot.services.importer import import_gold, import_items
    from bot.services.projects import create_project, set_member
    from bot.spec import load_spec
    from storage.db import Database
    from storage.models import Member

    started = time.monotonic()
    folder = prepare_folder(opts.folder, opts.items)
    key = AnswerKey.from_files(DEMO_DATA / "items.jsonl", DEMO_DATA / "answers.jsonl", DEMO_DATA / "gold.jsonl")
    spec = load_spec(folder / "project.yml")
    use_llm = bool(os.environ.get("OPENAI_API_KEY", "").strip())
    if use_llm and opts.model:
        spec = spec.model_copy(update={"llm": spec.llm.model_copy(update={"model": opts.model})})
    if not use_llm:
        from bot.services.drafting import SimulatedDrafter

        # The project's model is the simulated drafter's, so reports and exports name it "simulated".
        spec = spec.model_copy(update={"llm": spec.llm.model_copy(update={"model": SimulatedDrafter.MODEL})})
    if spec.redundancy > opts.annotators:  # each item needs that many different people
        spec = spec.model_copy(update={"redundancy": opts.annotators})
    days = max(1, opts.days)
    # The working days are the last `days` days before today (09:00 UTC), so everything is in the past
    # and `labelbot report` or `labelbot export` on the demo database later see the same data.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = midnight - timedelta(days=days) + timedelta(hours=9)
    clock = FakeClock(first_day)
    db = Database(f"sqlite:///{folder / DB_NAME}")
    db.upgrade()
    people = make_personas(opts.annotators, opts.accuracy, opts.accept_bias, opts.seed)
    crowd, expert_persona = people[:-1], people[-1]
    tally = Tally()
    result = DemoResult(folder=folder, seconds=0.0, simulated=not use_llm, report_text="", chart=None, export=None)

    with db.session() as s:
        project = create_project(s, spec, TEAM, clock.now())
        imported = import_items(s, project, folder / "items.jsonl", clock.now())
        gold = import_gold(s, project, folder / "gold.jsonl", clock.now())
        set_member(s, project, LEAD, clock.now(), tier=Tier.LEAD)
        set_member(s, project, expert_persona.user_id, clock.now(), tier=Tier.EXPERT)
    console.print(f"[bold]labelbot demo[/] in {folder}/: project [cyan]{spec.slug}[/] ({spec.task.value}, "
                  f"{len(spec.labels)} labels), {imported.inserted} items, {gold.inserted} gold items, "
                  f"{len(crowd)} annotators and 1 expert, {days} simulated day(s).")

    progress = Progress(
        TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not (live and console.is_terminal), transient=False,
    )
    # The fake people click at simulated speed; Slack's per-channel pacing is for real Slack.
    with _env(LABELBOT_DM_RATE="0"), DemoSlack(
        bot_token=BOT_TOKEN, team_id=TEAM, team_name="Brightdesk (demo)", team_domain="brightdesk-demo"
    ) as fake, progress:
        settings = Settings(
            database_url=db.url, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
            slack_api_url=fake.api_url, slack_team_id=TEAM,
            openai_api_key=os.environ.get("OPENAI_API_KEY") or None,
            openai_base_url=os.environ.get("OPENAI_BASE_URL") or None,
            dm_rate=0,  # the fake people click at simulated speed; pacing is for real Slack
        )
        deps = build_deps(settings, clock=clock, db=db)
        fake.add_channel("labeling")
        from bot.services.drafting import draft_items, undrafted_count

        if use_llm:
            what = f"Drafting with {spec.llm.model}"
        else:
            deps.drafter = _demo_drafter_class()(key, opts.drafter_accuracy, opts.seed)
            what = "Drafting (simulated drafter)"
        drafting = progress.add_task(what, total=undrafted_count(db, spec.slug, deps.drafter, now=clock.now()))
        stats = draft_items(db, spec.slug, drafter=deps.drafter, now=clock.now(),
                            progress=lambda n: progress.advance(drafting, n))
        result.drafting = stats.summary()
        if stats.errors:
            console.print(f"[yellow]Drafting:[/] {escape(stats.summary())} Examples without a draft are "
                          "labelled from scratch.")
        app = build_app(deps)

        with serve_wsgi(SlackRequestHandler(app)) as base:
            url = f"{base}/slack/events"
            active = _Active()

            def pace(seconds: float) -> None:
                """A person thinks for `seconds`: the shared clock moves by their share of the time (people
                think at the same time), and they wait a little in real time too, in proportion, so that
                quick and slow people interleave as they would."""
                clock.advance(seconds=seconds / active.count)
                time.sleep(seconds * REAL_SECONDS_PER_SIMULATED)

            def person(p: Any) -> Annotator:
                driver = Driver(url, SIGNING_SECRET, fake, TEAM, p.user_id, p.name.split()[0].lower())
                return Annotator(p, driver, fake, key, seed=opts.seed, pace=pace, tally=tally, now=clock.now)

            annotators = [person(p) for p in crowd]
            expert = person(expert_persona)
            quiz_task = progress.add_task("Quiz (new labelers)", total=len(crowd) * spec.quiz.size)
            label_task = progress.add_task("Items labeled", total=imported.inserted)
            review_task = progress.add_task("Expert review", total=0)
            per_day = math.ceil(imported.inserted * spec.redundancy / days)

            for day in range(1, days + 1):
                clock.set(first_day + timedelta(days=day - 1))
                expire_old_leases(deps)  # overnight, unanswered examples went back to the queue
                budget = None if day == days else per_day * day
                day_label = clock.now().strftime("%a %d %b")
                before = tally.production

                def should_stop(budget: int | None = budget) -> bool:
                    return budget is not None and tally.production >= budget

                def shift(a: Annotator, should_stop: Callable[[], bool] = should_stop) -> None:
                    with active:
                        if not a.qualified and a.take_quiz(spec.slug) is not True:
                            return
                        a.work(spec.slug, should_stop)

                threads = [threading.Thread(target=shift, args=(a,), name=f"demo-{a.persona.name}", daemon=True)
                           for a in annotators]
                for t in threads:
                    t.start()
                last_day = day == days
                progress.update(label_task, description=f"Items labeled (day {day}/{days}, {day_label})")
                while any(t.is_alive() for t in threads):
                    time.sleep(0.25)
                    _refresh(progress, db, spec.slug, tally, quiz_task, label_task, review_task)
                for t in threads:
                    t.join()
                if last_day:
                    with active:
                        expert.work(spec.slug, lambda: False, reviews_only=True)
                _refresh(progress, db, spec.slug, tally, quiz_task, label_task, review_task)
                qualified = sum(1 for a in annotators if a.qualified)
                reviewed = f"; the expert settled {tally.reviews} escalated item(s)" if last_day else ""
                result.day_lines.append(
                    f"Day {day} ({day_label}): {tally.production - before} answers from {qualified} qualified "
                    f"annotator(s){reviewed}"
                )
            progress.update(quiz_task, total=tally.quiz_answers, completed=tally.quiz_answers)

        now = clock.now()
        with db.read() as s:
            members = {m.user_id: m for m in s.scalars(select(Member))}
        for a in [*annotators, expert]:
            m = members.get(a.persona.user_id)
            result.people.append({
                "name": a.persona.name, "user": a.persona.user_id, "accuracy": a.persona.accuracy,
                "accept_bias": a.persona.accept_bias, "state": m.state if m else "-",
                "tier": m.tier if m else "-",
            })
        result.events = list(tally.events)
        result.example = _an_example(fake)
        _outputs(result, db, spec.slug, max(now, datetime.now(UTC)), console)
    result.seconds = time.monotonic() - started
    return result


def _an_example(fake: Any) -> list[str]:
    """One example message as the bot sent it (untrusted markup in the item, a draft), as text lines."""

    def looks(*needles: str) -> Callable[[dict[str, Any]], bool]:
        return lambda params: all(n in str(params.get("blocks")) for n in needles)

    found = (fake.find_call("chat.postMessage", looks("lb.controls", "lb.draft", "<!channel>"))
             or fake.find_call("chat.postMessage", looks("lb.controls", "lb.draft"))
             or fake.find_call("chat.postMessage", looks("lb.controls")))
    if found is None:
        return []
    blocks = found["blocks"]
    return render_blocks(json.loads(blocks) if isinstance(blocks, str) else blocks)


def render_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """Block Kit as plain lines, roughly as Slack shows it (plain_text marked as such)."""
    lines = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("section", "header"):
            text = block.get("text") or {}
            body = str(text.get("text", ""))
            if text.get("type") == "plain_text":
                body = f"[plain text] {body[:160]}" + ("…" if len(body) > 160 else "")
            lines.append(body)
        elif kind == "context":
            lines.append(" ".join(str(e.get("text", "")) for e in block.get("elements") or []))
        elif kind == "actions":
            shown = []
            for e in block.get("elements") or []:
                if e.get("type") == "button":
                    shown.append(f"[{e['text']['text']}]")
                elif e.get("type") == "static_select":
                    initial = (e.get("initial_option") or {}).get("value")
                    names = [o["text"]["text"] + (" ✓" if o.get("value") == initial else "") for o in e["options"]]
                    shown.append("[menu: " + " | ".join(names) + "]")
            lines.append(" ".join(shown))
    return lines


def _refresh(progress: Any, db: Any, slug: str, tally: Any, quiz_task: Any, label_task: Any,
             review_task: Any) -> None:
    counts = _counts(db, slug)
    settled = counts.get("complete", 0) + counts.get("escalated", 0) + counts.get("resolved", 0)
    progress.update(label_task, completed=settled)
    total = progress.tasks[quiz_task].total or 0
    progress.update(quiz_task, completed=tally.quiz_answers, total=max(total, tally.quiz_answers))
    escalated = counts.get("escalated", 0) + counts.get("resolved", 0)
    progress.update(review_task, total=escalated, completed=counts.get("resolved", 0))


def _outputs(result: DemoResult, db: Any, slug: str, now: datetime, console: Any) -> None:
    """The daily report (text and JSON), its chart and the exports, written to the demo folder."""
    from bot.services.export import ExportOptions, export_project
    from bot.services.reports import DAILY_WINDOW_DAYS, build_report
    from bot.services.reports.chart import report_chart

    report = build_report(db, slug, since=now - timedelta(days=DAILY_WINDOW_DAYS), until=now, now=now)
    text = report.to_text()
    if result.simulated:
        text = f"NOTE: {SIMULATED_BANNER}\n\n{text}"
    result.report_text = text
    folder = result.folder
    (folder / REPORT_TEXT).write_text(text + "\n", encoding="utf-8")
    data = report.to_json()
    (folder / REPORT_JSON).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    result.chart = folder / CHART
    result.chart.write_bytes(report_chart(data))
    result.export = folder / EXPORT
    export_project(db, slug, result.export, ExportOptions(fmt="jsonl"), now=now)
    export_project(db, slug, folder / RAW_EXPORT, ExportOptions(fmt="jsonl", raw=True), now=now)


# --------------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------------


def next_steps(folder: Path) -> str:
    return f"""Next steps: the same loop in your Slack workspace
  1. Create the Slack app: api.slack.com/apps -> Create New App -> From a manifest -> paste app_manifest.yml.
     Install it to your workspace.
  2. Tokens (see the README):
       export SLACK_BOT_TOKEN=xoxb-...   # OAuth & Permissions -> Bot User OAuth Token
       export SLACK_APP_TOKEN=xapp-...   # Basic Information -> App-Level Tokens (scope connections:write)
       export OPENAI_API_KEY=sk-...      # optional: real LLM drafts (OPENAI_BASE_URL for vLLM/Ollama/LiteLLM)
  3. Create the project and load its data (this demo's files are a template):
       labelbot project create {folder}/project.yml
       labelbot import support-intents {folder}/items.jsonl
       labelbot gold support-intents {folder}/gold.jsonl
       labelbot member support-intents U0YOURID --tier lead
  4. Run it: labelbot serve   (Socket Mode; `labelbot serve --http` behind https://HOST/slack/events)
     Then, in Slack: /label quiz, /label, and as a lead /label-report and /label-export.
  Explore this run: DATABASE_URL=sqlite:///{folder}/{DB_NAME} labelbot report support-intents"""


def print_result(result: DemoResult, console: Any) -> None:
    from rich.markup import escape
    from rich.rule import Rule
    from rich.table import Table

    console.print()
    for line in result.day_lines:
        console.print(f"  {escape(line)}")
    if not any(p["state"] in ("qualified", "suspended") for p in result.people if p["tier"] == "crowd"):
        console.print("  [yellow]Nobody passed the quiz, so there are no crowd labels: try a higher --accuracy.[/]")
    if result.events:
        console.print(Rule("What the people in Slack were told"))
        for event in result.events:
            console.print(f"  • {escape(event)}")
    if result.example:
        console.print(Rule("An example message, as the bot sent it"))
        for line in result.example:
            console.print(f"  {escape(line)}", highlight=False)
        console.print("  Untrusted text goes out as plain_text, so <!channel> and <https://...|links> show as "
                      "typed: nobody is pinged, no link is hidden.")
    table = Table(title="Who labeled", title_justify="left")
    for col in ("annotator", "Slack user", "accuracy", "accepts wrong drafts", "tier", "state"):
        table.add_column(col)
    for p in result.people:
        table.add_row(p["name"], p["user"], f"{p['accuracy']:.0%}", f"{p['accept_bias']:.0%}", p["tier"], p["state"])
    console.print(table)
    console.print(Rule("Daily report"))
    console.print(escape(result.report_text), highlight=False, emoji=False)
    console.print(Rule("Files"))
    folder = result.folder
    for name, what in ((DB_NAME, "the SQLite database"), (REPORT_TEXT, "this report"),
                       (REPORT_JSON, "the report as JSON"), (CHART, "the chart"),
                       (EXPORT, "the final dataset (one row per settled item)"),
                       (RAW_EXPORT, "every label, raw"), ("project.yml", "the project spec"),
                       ("items.jsonl", "the items imported"), ("gold.jsonl", "the gold items")):
        path = folder / name
        if path.exists():
            console.print(f"  {escape(str(path)):<42} {what}")
    if result.simulated:
        console.print(f"\n[yellow]{escape(SIMULATED_BANNER)}[/]")
    console.print(f"\nDone in {result.seconds:.1f} s.\n")
    console.print(escape(next_steps(folder)), highlight=False)
