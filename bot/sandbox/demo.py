"""`labelbot demo`: the whole labeling loop on this machine, offline, in under a minute.

What runs is the real thing: the Bolt app built by `bot.app.build_app`, served over HTTP on
127.0.0.1 (the same code path as the tests), a fresh SQLite database, and the fake Slack of
`bot.sandbox`. With `images=True` the project is pictures of shapes the demo draws itself
(`bot.sandbox.pictures`), uploaded to the fake Slack ahead of demand and shown with image blocks.
Simulated people (`bot.sandbox.annotators`) read their DMs there and click like a person: they
take the quiz (some fail and are told so), label with drafts and blind controls, skip and flag; an
expert adjudicates the escalations. Drafts come from the LLM when OPENAI_API_KEY is set,

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
DEMO_CHANNEL = "labeling"  # the report channel of the demo (alerts are posted there as they trip)
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
    images: bool = False  # the image project (shapes drawn by the demo) instead of the support tickets


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
    revision: list[str] = field(default_factory=list)  # the guideline revision after day 1, as lines
    people: list[dict[str, Any]] = field(default_factory=list)
    drafting: str = ""
    example: list[str] = field(default_factory=list)
    slug: str = "support-intents"


# --------------------------------------------------------------------------------------------------
# The folder
# --------------------------------------------------------------------------------------------------


def prepare_folder(folder: Path, n_items: int, images: bool = False) -> Path:
    """Create the folder, remove the previous run's database and outputs (only files the demo writes),
    and copy the example project there (the first `n_items` items); `images`: draw the shapes project."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", *OUTPUTS):
        (folder / name).unlink(missing_ok=True)
    for old in (folder / "images").glob("*.png") if (folder / "images").is_dir() else ():
        if old.name.startswith(("shape-", "gold-")):
            old.unlink()
    if images:
        return folder
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
            if item.is_gold:
                truth = None
            elif item.image is not None:
                truth = self.key.lookup_picture(item.image.sha256)
            else:
                truth = self.key.lookup(item.text)
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
    folder = prepare_folder(opts.folder, opts.items, images=opts.images)
    if opts.images:
        from bot.sandbox.pictures import write_shape_project

        key = AnswerKey.for_pictures(write_shape_project(folder, opts.items, seed=opts.seed))
    else:
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
    # The demo's lead reads #labeling: the daily summary and the alerts as they trip go there.
    spec = spec.model_copy(update={"report": spec.report.model_copy(update={"channel": f"#{DEMO_CHANNEL}"})})
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
    result = DemoResult(folder=folder, seconds=0.0, simulated=not use_llm, report_text="", chart=None, export=None,
                        slug=spec.slug)

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
        fake.add_channel(DEMO_CHANNEL)
        if opts.images:
            _upload_pictures(deps, progress)
        from bot.services.drafting import draft_items, undrafted_count

        if use_llm:
            what = f"Drafting with {spec.llm.model}"
        else:
            deps.drafter = _demo_drafter_class()(key, opts.drafter_accuracy, opts.seed)
            what = "Drafting (simulated drafter)"
        assert deps.drafter is not None
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
                first = p.name.split()[0]
                fake.add_user(p.user_id, name=first, real_name=p.name)  # the name reports show (users.info)
                driver = Driver(url, SIGNING_SECRET, fake, TEAM, p.user_id, first.lower())
                return Annotator(p, driver, fake, key, seed=opts.seed, pace=pace, tally=tally, now=clock.now)

            annotators = [person(p) for p in crowd]
            expert = person(expert_persona)
            quiz_task = progress.add_task("Quiz (new labelers)", total=len(crowd) * spec.quiz.size)
            label_task = progress.add_task("Items labeled", total=imported.inserted)
            review_task = progress.add_task("Expert review", total=0)
            per_day = math.ceil(imported.inserted * spec.redundancy / days)
            days_run: list[tuple[Any, str, int]] = []

            for day in range(1, days + 1):
                clock.set(first_day + timedelta(days=day - 1))
                expire_old_leases(deps)  # overnight, unanswered examples went back to the queue
                _remind(deps, fake, annotators, expert, tally, stop=day == 2)  # on day 2 someone stops them
                budget = None if day == days else per_day * day
                day_label, day_date = clock.now().strftime("%a %d %b"), clock.now().date()

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
                progress.update(label_task, description=f"Items labeled (day {day}/{days}, {day_label})")
                while any(t.is_alive() for t in threads):
                    time.sleep(0.25)
                    _refresh(progress, db, spec.slug, tally, quiz_task, label_task, review_task)
                for t in threads:
                    t.join()
                with active:  # the expert settles the day's escalations
                    expert.work(spec.slug, lambda: False, reviews_only=True)
                _refresh(progress, db, spec.slug, tally, quiz_task, label_task, review_task)
                _post_alerts(deps, fake, tally)  # alerts that tripped today go to #labeling as they happen
                qualified = sum(1 for a in annotators if a.qualified)
                # The day's counts come from the report at the end (one vocabulary, the same numbers).
                days_run.append((day_date, day_label, qualified))
                if day == 1 and days > 1:  # the lead revises the guidelines where people disagreed
                    lead = Driver(url, SIGNING_SECRET, fake, TEAM, LEAD, "lead")
                    result.revision = _revise(lead, fake, deps, spec.slug, tally, clock.now())
                    for a in annotators:
                        a.read_guideline_news()
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
        data = _outputs(result, deps, spec.slug, max(now, datetime.now(UTC)), console)
        result.day_lines = day_lines(data, days_run)
    result.seconds = time.monotonic() - started
    return result


def _upload_pictures(deps: Any, progress: Any) -> None:
    """The pictures go to Slack before anyone labels (the running bot does it ahead of demand)."""
    from bot.services.images import image_status, upload_pending
    from bot.services.projects import list_projects

    with deps.db.read() as s:
        waiting = sum(image_status(s, p).uploads.get("pending", 0) for p in list_projects(s))
    task = progress.add_task("Uploading pictures to Slack", total=waiting)
    while True:
        stats = upload_pending(deps.db, deps.workspace_client, deps.clock.now, limit=32, concurrency=4)
        progress.advance(task, stats.uploaded + stats.failed + stats.given_up)
        if not stats.capped:
            return


def _revise(lead: Any, fake: Any, deps: Any, slug: str, tally: Any, now: datetime) -> list[str]:
    """The lead asks for the report in Slack, clicks "Suggest a guideline revision", reads the proposal
    in the modal, ticks the quoted expert decisions for gold, and publishes; every qualified annotator
    gets one DM. Returns what happened, as lines."""
    from bot.blocks.ids import Action, Block, View

    def has_suggest(message: dict[str, Any]) -> bool:
        return any(b.get("block_id") == Block.SUGGEST for b in message.get("blocks") or [])

    lead.command("/label-report", f"{slug} 1")
    try:
        report = fake.wait_for(lambda: next((m for m in fake.ephemerals(LEAD) if has_suggest(m)), None), timeout=60)
        lead.click(report, Action.SUGGEST_REVISION)
        modal = fake.wait_for(lambda: next((v for v in fake.views_open(LEAD) if v.get("callback_id") == View.REVISION),
                                           None), timeout=60)
    except AssertionError:
        return ["The lead could not get a suggestion in time; the guidelines stay at version 1."]
    promote = [o["value"] for b in modal["blocks"] if b.get("block_id") == Block.REVISION_PROMOTE
               for o in b["element"]["options"]]
    values = {Block.REVISION_PROMOTE: {Action.REVISION_PROMOTE: promote}} if promote else None
    reply = lead.submit_view(modal, values)
    deps.wait_idle(30)  # the DMs to the annotators
    done = next((v for v in fake.views_open(LEAD) if v.get("callback_id") == View.REVISION_DONE), None)
    if reply.status != 200 or done is None:
        return [f"Publishing the revision failed ({reply.status}: {reply.body[:200]})."]
    shown = render_blocks([b for b in modal["blocks"] if b.get("type") in ("header", "context", "section")])
    lines = [line.split("\n")[0].replace("*", "") for line in shown[:6]]
    lines += [line.replace("*", "") for line in render_blocks(done["blocks"])[0].split("\n")]
    told = sum(1 for params in fake.calls_to("chat.postMessage") if "gl.notice" in str(params.get("blocks")))
    tally.note(f"The lead published guideline version 2 from the suggestion; {told} annotator(s) got a DM", now)
    return lines


def _an_example(fake: Any) -> list[str]:
    """One example message as the bot sent it (untrusted markup in the item, a draft), as text lines."""

    def looks(*needles: str) -> Callable[[dict[str, Any]], bool]:
        return lambda params: all(n in str(params.get("blocks")) for n in needles)

    found = (fake.find_call("chat.postMessage", looks("lb.controls", "lb.draft", "slack_file", "<!channel>"))
             or fake.find_call("chat.postMessage", looks("lb.controls", "lb.draft", "<!channel>"))
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
        elif kind == "image":
            source = block.get("slack_file") or {"image_url": block.get("image_url")}
            lines.append(f"[image: {str(block.get('alt_text', ''))[:80]}] {json.dumps(source)}")
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


def day_lines(data: dict[str, Any], days_run: list[tuple[Any, str, int]]) -> list[str]:
    """One line per simulated day with the report's counts for that day (`activity.per_day`), so the demo
    and the report agree on every number."""
    from bot.core.activity import Activity

    per_day = {str(d["day"]): Activity.from_dict(d) for d in (data.get("activity") or {}).get("per_day") or []}
    lines = []
    for n, (day, label, qualified) in enumerate(days_run, start=1):
        activity = per_day.get(day.isoformat(), Activity())
        lines.append(f"Day {n} ({label}): {activity.words()}; {qualified} qualified annotator(s)")
    return lines


def _remind(deps: Any, fake: Any, annotators: list[Any], expert: Any, tally: Any, *, stop: bool) -> None:
    """The morning's reminders (the scheduled job's service); with `stop`, the first annotator reminded
    clicks Stop reminders."""
    from bot.services.reminders import reminders_on, send_due_reminders

    names = {a.persona.user_id: a.persona.name for a in [*annotators, expert]}
    sent = [s for s in send_due_reminders(deps) if s.ok]
    if not sent:
        return
    said = fake.newest(fake.dm_channel(sent[0].user_id)) or {}
    who = ", ".join(names.get(s.user_id, s.user_id) for s in sent)
    off = [a.persona.name for a in annotators if a.qualified and not reminders_on(deps.db, TEAM, a.persona.user_id)]
    quiet = f" (not {', '.join(off)}: reminders off)" if off else ""
    tally.note(f"labelbot reminded {who}{quiet}: \"{said.get('text', '')}\"", deps.clock.now())
    reminded = {s.user_id for s in sent}
    stopper = next((a for a in annotators if a.persona.user_id in reminded), None)
    if not stop or stopper is None:
        return
    message = fake.newest(stopper.dm)
    stopper.driver.click(message, "reminders.off")
    deps.wait_idle()
    told = fake.wait_for(lambda: (fake.newest(stopper.dm) or {}).get("text") == "Reminders are off" and
                         fake.newest(stopper.dm))
    text = next((b["text"]["text"] for b in told["blocks"] if b.get("block_id") == "rm.changed"), told["text"])
    tally.note(f"{stopper.persona.name} clicked Stop reminders and was told: \"{text}\"", deps.clock.now())


def _post_alerts(deps: Any, fake: Any, tally: Any) -> None:
    """Alerts that tripped, posted to the report channel once as they happen (the scheduled job's service)."""
    from bot.services.reports.live import post_new_alerts

    for posted in post_new_alerts(deps):
        if posted.ok:
            message = fake.last_message(fake.channel_id(DEMO_CHANNEL)) or {}
            tally.note(f"Posted to #{DEMO_CHANNEL} as it happened: \"{message.get('text', posted.alert.text)}\"",
                       deps.clock.now())


def _outputs(result: DemoResult, deps: Any, slug: str, now: datetime, console: Any) -> dict[str, Any]:
    """The daily report (text and JSON), its chart and the exports, written to the demo folder; returns the
    report's JSON."""
    from bot.services.export import ExportOptions, export_project
    from bot.services.reports import DAILY_WINDOW_DAYS, build_report
    from bot.services.reports.chart import report_chart
    from bot.services.reports.names import name_people

    db = deps.db
    report = build_report(db, slug, since=now - timedelta(days=DAILY_WINDOW_DAYS), until=now, now=now)
    name_people(report, deps.names, deps.client, TEAM)
    text = report.to_text()
    if result.simulated:
        text = f"NOTE: {SIMULATED_BANNER}\n\n{text}"
    result.report_text = text
    folder = result.folder
    (folder / REPORT_TEXT).write_text(text + "\n", encoding="utf-8")
    data = report.to_json()
    verdicts = [v["change"]["sentence"] for v in data.get("agreement_by_guidelines") or [] if v.get("change")]
    if verdicts and result.revision:
        result.revision.append(f"Measured after day {len(result.day_lines)}: {verdicts[-1]}")
    (folder / REPORT_JSON).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    result.chart = folder / CHART
    result.chart.write_bytes(report_chart(data))
    result.export = folder / EXPORT
    export_project(db, slug, result.export, ExportOptions(fmt="jsonl"), now=now)
    export_project(db, slug, folder / RAW_EXPORT, ExportOptions(fmt="jsonl", raw=True), now=now)
    return data


# --------------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------------


def next_steps(folder: Path, slug: str = "support-intents") -> str:
    return f"""Next steps: the same loop in your Slack workspace
  1. Create the Slack app: api.slack.com/apps -> Create New App -> From a manifest -> paste app_manifest.yml.
     Install it to your workspace.
  2. Tokens (see the README):
       export SLACK_BOT_TOKEN=xoxb-...   # OAuth & Permissions -> Bot User OAuth Token
       export SLACK_APP_TOKEN=xapp-...   # Basic Information -> App-Level Tokens (scope connections:write)
       export OPENAI_API_KEY=sk-...      # optional: real LLM drafts (OPENAI_BASE_URL for vLLM/Ollama/LiteLLM)
  3. Create the project and load its data (this demo's files are a template):
       labelbot project create {folder}/project.yml
       labelbot import {slug} {folder}/items.jsonl
       labelbot gold {slug} {folder}/gold.jsonl
       labelbot member {slug} U0YOURID --tier lead
  4. Run it: labelbot serve   (Socket Mode; `labelbot serve --http` behind https://HOST/slack/events)
     Then, in Slack: /label quiz, /label, and as a lead /label-report and /label-export.
  Explore this run: DATABASE_URL=sqlite:///{folder}/{DB_NAME} labelbot report {slug}"""


def print_result(result: DemoResult, console: Any) -> None:
    from rich.markup import escape
    from rich.rule import Rule
    from rich.table import Table

    console.print()
    for line in result.day_lines:
        console.print(f"  {escape(line)}")
    if not any(p["state"] in ("qualified", "suspended") for p in result.people if p["tier"] == "crowd"):
        console.print("  [yellow]Nobody passed the quiz, so there are no crowd labels: try a higher --accuracy.[/]")
    if result.revision:
        console.print(Rule("The guideline revision after day 1"))
        for line in result.revision:
            console.print(f"  {escape(line)}", highlight=False)
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
                       ("images", "the pictures (drawn by the demo)"),
                       ("items.jsonl", "the items imported"), ("gold.jsonl", "the gold items")):
        path = folder / name
        if path.exists():
            console.print(f"  {escape(str(path)):<42} {what}")
    if result.simulated:
        console.print(f"\n[yellow]{escape(SIMULATED_BANNER)}[/]")
    console.print(f"\nDone in {result.seconds:.1f} s.\n")
    console.print(escape(next_steps(folder, result.slug)), highlight=False)
