"""storage.frames: the labels frame (and friends) on SQLite and PostgreSQL.

Also home of what tests/test_reports.py reuses: `Seeder` writes projects, members, items, gold,
drafts, assignments and labels through the models; `backend` gives one migrated database per module
and backend (SQLite, and PostgreSQL on LABELBOT_TEST_POSTGRES_URL in a private schema; skipped loudly
when unset, failing under CI=true), and `emptied` clears its tables after each test, which is much
cheaper than migrating a fresh database for every test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete

from bot.core.values import canonical_key
from bot.services.projects import create_project
from bot.spec import parse_spec
from storage.db import Database
from storage.frames import (
    LABEL_FRAME_COLUMNS,
    drafts_frame,
    empty_labels_frame,
    labels_frame,
    members_frame,
    throughput_frame,
)
from storage.models import Assignment, Base, Draft, Gold, Item, Label, Member
from tests.conftest import _pg_schema_database

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
BACKENDS = ["sqlite", "postgresql"]


def backend(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One migrated database for a module: a SQLite file, or a private PostgreSQL schema."""
    if kind == "sqlite":
        db = Database(f"sqlite:///{tmp_path_factory.mktemp('db')}/labelbot.db")
        db.upgrade()
        yield db
        db.dispose()
        return
    yield from _pg_schema_database()


@contextlib.contextmanager
def emptied(db: Database) -> Iterator[Database]:
    """Yield `db`; afterwards delete every row (children first) so the next test starts empty."""
    try:
        yield db
    finally:
        with db.session() as s:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name != "alembic_version":
                    s.execute(delete(table))


def spec_dict(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "slug": "intents",
        "name": "Support intents",
        "task": "classification",
        "labels": ["billing", "bug", "other"],
        "members": {"leads": ["ULEAD"]},
        "llm": {"price_per_1m_input": 0.15, "price_per_1m_output": 0.6},
        "report": {"channel": "CREPORTS", "time": "09:00", "timezone": "UTC"},
    }
    spec.update(overrides)
    return spec


class Seeder:
    """Writes rows through the models. Values are task-shaped; keys are `canonical_key(value)`."""

    def __init__(self, db: Database, now: datetime = T0, *, team: str = "T1", **spec_overrides: Any) -> None:
        self.db = db
        self.now = now
        self.team = team
        spec = parse_spec(spec_dict(**spec_overrides))
        with db.session() as s:
            project = create_project(s, spec, team, now)
            self.project_id = project.id
            self.slug = project.slug
        self.members: dict[str, int] = {}
        self._item_seq = 0
        self._open: Any = None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Write everything inside the block in one transaction (much faster than one per row)."""
        with self.db.session() as s:
            self._open = s
            try:
                yield
            finally:
                self._open = None

    def _session(self) -> Any:
        return contextlib.nullcontext(self._open) if self._open is not None else self.db.session()

    def member(
        self,
        user_id: str,
        *,
        tier: str = "crowd",
        state: str = "qualified",
        reason: str | None = None,
        suspended_at: datetime | None = None,
    ) -> int:
        if user_id in self.members:
            return self.members[user_id]
        with self._session() as s:
            m = Member(
                project_id=self.project_id,
                team_id=self.team,
                user_id=user_id,
                tier=tier,
                state=state,
                served=0,
                state_reason=reason,
                suspended_at=suspended_at,
                created_at=self.now,
            )
            s.add(m)
            s.flush()
            self.members[user_id] = m.id
        return m.id

    def item(self, *, gold: Any = None, text_: str = "some text") -> int:
        self._item_seq += 1
        with self._session() as s:
            it = Item(
                project_id=self.project_id,
                external_id=f"x{self._item_seq}",
                text=text_,
                meta=None,
                status="gold" if gold is not None else "open",
                slots=0,
                labels_done=0,
                is_gold=gold is not None,
                created_at=self.now,
                updated_at=self.now,
            )
            s.add(it)
            s.flush()
            if gold is not None:
                s.add(
                    Gold(
                        project_id=self.project_id,
                        item_id=it.id,
                        value=gold,
                        value_key=canonical_key(gold),
                        explanation=None,
                        source="import",
                        created_at=self.now,
                    )
                )
            return it.id

    def draft(
        self,
        item_id: int,
        value: Any,
        *,
        status: str = "ok",
        prompt_tokens: int = 100,
        completion_tokens: int = 10,
        cached_tokens: int = 0,
        at: datetime | None = None,
        model: str = "gpt-4o-mini",
        error: str | None = None,
    ) -> int:
        with self._session() as s:
            d = Draft(
                project_id=self.project_id,
                item_id=item_id,
                model=model,
                prompt_version="v1",
                status=status,
                value=value,
                value_key=None if value is None else canonical_key(value),
                confidence=0.9,
                error_kind="timeout" if error else None,
                error=error,
                raw=None,
                prompt_tokens=prompt_tokens,
                cached_tokens=cached_tokens,
                completion_tokens=completion_tokens,
                latency_ms=120.0,
                attempts=1,
                created_at=at or self.now,
            )
            s.add(d)
            s.flush()
            return d.id

    def label(
        self,
        item_id: int,
        user: str,
        value: Any,
        *,
        action: str | None = None,
        kind: str = "production",
        draft_id: int | None = None,
        shown: bool | None = None,
        seconds: float | None = 5.0,
        counts: bool = True,
        at: datetime | None = None,
        correct: float | None = None,
    ) -> int:
        member_id = self.member(user)
        shown = (draft_id is not None) if shown is None else shown
        if action is None:
            action = "manual" if not shown else "accept"
        at = at or self.now
        with self._session() as s:
            a = Assignment(
                project_id=self.project_id,
                item_id=item_id,
                member_id=member_id,
                team_id=self.team,
                user_id=user,
                kind=kind,
                status="done",
                draft_id=draft_id,
                draft_shown=shown,
                blind=(draft_id is not None and not shown),
                leased_at=at,
                expires_at=at,
                closed_at=at,
            )
            s.add(a)
            s.flush()
            lab = Label(
                assignment_id=a.id,
                project_id=self.project_id,
                item_id=item_id,
                member_id=member_id,
                user_id=user,
                kind=kind,
                action=action,
                value=value,
                value_key=None if value is None else canonical_key(value),
                draft_id=draft_id if shown else None,
                draft_shown=shown,
                seconds=seconds,
                counts=counts,
                correct=correct,
                created_at=at,
            )
            s.add(lab)
            s.flush()
            return lab.id


@pytest.fixture(scope="module", params=BACKENDS)
def module_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from backend(request.param, tmp_path_factory)


@pytest.fixture
def db(module_db: Database) -> Iterator[Database]:
    with emptied(module_db) as d:
        yield d


def objs(series: pd.Series) -> list[Any]:
    """Values as Python objects, missing as None (categoricals give NaN for missing)."""
    return [None if pd.isna(v) else v for v in series.astype(object)]


# --- tests ---------------------------------------------------------------------------------------


def test_labels_frame_columns_values_and_joins(db: Database) -> None:
    sd = Seeder(db)
    sd.member("UA", tier="crowd")
    sd.member("UB", tier="expert")
    i1 = sd.item()
    g1 = sd.item(gold="bug")
    d1 = sd.draft(i1, "billing")
    d2 = sd.draft(g1, "other")
    sd.label(
        i1,
        "UA",
        "billing",
        draft_id=d1,
        shown=True,
        action="accept",
        seconds=3.5,
        at=T0 + timedelta(minutes=1, microseconds=123456),
    )
    sd.label(i1, "UB", "bug", draft_id=d1, shown=False, seconds=None, at=T0 + timedelta(minutes=2))  # blind
    sd.label(g1, "UA", "bug", kind="honeypot", draft_id=d2, shown=False, correct=1.0, at=T0 + timedelta(minutes=3))
    sd.label(g1, "UB", None, action="skip", kind="quiz", counts=False, at=T0 + timedelta(minutes=4))

    with db.read() as s:
        frame = labels_frame(s, sd.project_id, T0, T0 + timedelta(days=1))
    assert tuple(frame.columns) == LABEL_FRAME_COLUMNS
    assert len(frame) == 4
    frame = frame.sort_values("created_at").reset_index(drop=True)
    assert frame["item_id"].tolist() == [i1, i1, g1, g1]
    assert frame["annotator"].astype(object).tolist() == ["UA", "UB", "UA", "UB"]
    assert frame["tier"].astype(object).tolist() == ["crowd", "expert", "crowd", "expert"]
    assert objs(frame["value_key"]) == ['"billing"', '"bug"', '"bug"', None]
    assert frame["value"].tolist() == ["billing", "bug", "bug", None]
    assert objs(frame["action"]) == ["accept", "manual", "manual", "skip"]
    assert frame["draft_shown"].tolist() == [True, False, False, False]
    assert frame["blind"].tolist() == [False, True, True, False]
    # the draft of a blind item is still there (anchoring needs it)
    assert objs(frame["draft_key"]) == ['"billing"', '"billing"', '"other"', None]
    assert objs(frame["gold_key"]) == [None, None, '"bug"', '"bug"']
    assert objs(frame["kind"]) == ["production", "production", "honeypot", "quiz"]
    assert frame["counts"].tolist() == [True, True, True, False]
    assert frame["seconds"].iloc[0] == 3.5 and np.isnan(frame["seconds"].iloc[1])
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["created_at"].iloc[0] == pd.Timestamp(T0 + timedelta(minutes=1, microseconds=123456))
    for col in ("annotator", "value_key", "action", "draft_key", "kind", "gold_key", "tier"):
        assert isinstance(frame[col].dtype, pd.CategoricalDtype), col


def test_window_is_half_open_and_per_project(db: Database) -> None:
    sd = Seeder(db)
    other = Seeder(db, slug="other")
    i = sd.item()
    j = other.item()
    sd.label(i, "UA", "bug", at=T0 - timedelta(seconds=1))
    sd.label(i, "UB", "bug", at=T0)
    sd.label(i, "UC", "bug", at=T0 + timedelta(days=1))
    other.label(j, "UA", "bug", at=T0 + timedelta(hours=1))
    with db.read() as s:
        frame = labels_frame(s, sd.project_id, T0, T0 + timedelta(days=1))
        everything = labels_frame(s, sd.project_id)
    assert frame["annotator"].astype(object).tolist() == ["UB"]
    assert sorted(everything["annotator"].astype(object)) == ["UA", "UB", "UC"]


def test_chunked_fetch_matches_single_chunk(db: Database) -> None:
    sd = Seeder(db)
    items = [sd.item() for _ in range(7)]
    for n, item in enumerate(items):
        for user, label in (("UA", "bug"), ("UB", "billing" if n % 2 else "bug"), ("UC", "other")):
            sd.label(item, user, label, at=T0 + timedelta(minutes=n))
    with db.read() as s:
        small = labels_frame(s, sd.project_id, chunk_rows=4)
        big = labels_frame(s, sd.project_id)
    pd.testing.assert_frame_equal(
        small.sort_values(["item_id", "member_id"]).reset_index(drop=True),
        big.sort_values(["item_id", "member_id"]).reset_index(drop=True),
    )
    assert len(big) == 21


def test_empty_frames(db: Database) -> None:
    sd = Seeder(db)
    with db.read() as s:
        frame = labels_frame(s, sd.project_id, T0, T0 + timedelta(days=1))
        drafts = drafts_frame(s, sd.project_id)
    assert frame.empty and tuple(frame.columns) == LABEL_FRAME_COLUMNS
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]"
    assert drafts.empty
    assert tuple(empty_labels_frame().columns) == LABEL_FRAME_COLUMNS
    assert throughput_frame(frame).empty


def test_multilabel_and_spans_values_decoded(db: Database) -> None:
    sd = Seeder(db, task="multilabel", labels=["a", "b", "c"])
    i = sd.item()
    sd.label(i, "UA", ["a", "b"])
    sd.label(i, "UB", ["a", "b"])
    sd.label(i, "UC", [])
    with db.read() as s:
        frame = labels_frame(s, sd.project_id)
    values = frame.sort_values("member_id")["value"].tolist()
    assert values == [["a", "b"], ["a", "b"], []]


def test_drafts_frame_and_members(db: Database) -> None:
    sd = Seeder(db)
    i = sd.item()
    sd.draft(i, "bug", prompt_tokens=1000, completion_tokens=50, cached_tokens=200)
    sd.draft(sd.item(), None, status="error", error="timed out", model="m2", prompt_tokens=0, completion_tokens=0)
    sd.member("UX", state="suspended", reason="failed hidden checks", suspended_at=T0)
    with db.read() as s:
        drafts = drafts_frame(s, sd.project_id, T0, T0 + timedelta(days=1))
        members = members_frame(s, sd.project_id)
    assert len(drafts) == 2
    assert drafts["prompt_tokens"].sum() == 1000 and drafts["cached_tokens"].sum() == 200
    assert sorted(drafts["status"].astype(object)) == ["error", "ok"]
    row = members.set_index("user_id").loc["UX"]
    assert row["state"] == "suspended" and row["state_reason"] == "failed hidden checks"
    assert row["suspended_at"] == pd.Timestamp(T0)
    assert "ULEAD" in set(members["user_id"])  # leads from the spec are members


def test_throughput_frame_local_days() -> None:
    frame = empty_labels_frame()
    times = pd.to_datetime(["2026-01-05T22:30:00Z", "2026-01-05T23:30:00Z", "2026-01-06T01:00:00Z"], utc=True)
    frame = pd.DataFrame(
        {
            "annotator": pd.Categorical(["UA", "UA", "UB"]),
            "action": pd.Categorical(["accept", "skip", "manual"]),
            "created_at": pd.Series(times).astype("datetime64[ns, UTC]"),
        }
    )
    utc = throughput_frame(frame, "UTC")
    assert utc[["annotator", "labels", "answered"]].values.tolist() == [["UA", 2, 1], ["UB", 1, 1]]
    paris = throughput_frame(frame, "Europe/Paris")  # UTC+1: 22:30Z is Jan 5, 23:30Z is Jan 6
    assert [str(d) for d in paris["day"]] == ["2026-01-05", "2026-01-06", "2026-01-06"]


def test_quality_functions_accept_the_frame(db: Database) -> None:
    """The category dtypes work with the statistics package (incl. `a < b` on annotators)."""
    from bot.quality import agreement

    sd = Seeder(db)
    for n in range(4):
        item = sd.item()
        sd.label(item, "UA", "bug")
        sd.label(item, "UB", "bug" if n < 3 else "billing")
    with db.read() as s:
        frame = labels_frame(s, sd.project_id)
    pairs = agreement.cohens_kappa_pairs(frame)
    assert [(p.a, p.b, p.kappa.n) for p in pairs] == [("UA", "UB", 4)]
    assert agreement.percent_agreement(frame).value == pytest.approx(0.75)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["created_at", "member_id", "item_id"], kind="stable").reset_index(drop=True)


def test_every_fetch_method_gives_the_same_frame(db: Database) -> None:
    """The backend's fast path (SQLite columns, PostgreSQL CSV) equals plain rows, across chunks,
    with keys full of commas, quotes, escapes and non-ASCII, nulls, and ties on a chunk boundary."""
    sd = Seeder(db, task="multilabel", labels=["a", "b", "x"])  # values below are written raw
    hostile = [["a,b"], ['say "hi"', "ünï"], [], ["x", "a,b"], None]
    gold = sd.item(gold=['say "hi"'])
    items = [sd.item() for _ in range(6)]
    for n, item in enumerate([gold, *items]):
        draft = sd.draft(item, hostile[n % 4]) if n % 3 else None
        for k, user in enumerate(("UA", "UB", "UC")):
            value = hostile[(n + k) % len(hostile)]
            sd.label(
                item,
                user,
                value,
                action="skip" if value is None else None,
                kind="honeypot" if item == gold else "production",
                draft_id=draft,
                shown=bool(draft) and k != 1,
                seconds=None if k == 2 else 1.2345678 * n,  # kept to the millisecond
                correct=0.5 if item == gold else None,
                at=T0 + timedelta(minutes=n // 2, microseconds=7 * k),  # ties across items
            )
    with db.read() as s:
        reference = _sorted(labels_frame(s, sd.project_id, method="rows"))
        fast = _sorted(labels_frame(s, sd.project_id, chunk_rows=4))
        one_chunk = _sorted(labels_frame(s, sd.project_id))
    assert len(reference) == 21
    pd.testing.assert_frame_equal(fast, reference)
    pd.testing.assert_frame_equal(one_chunk, reference)
    assert ['say "hi"', "ünï"] in reference["value"].tolist()
    assert reference["value"].isna().sum() == reference["action"].eq("skip").sum() > 0


def test_window_chunks_cover_every_row_once(db: Database) -> None:
    sd = Seeder(db)
    items = [sd.item() for _ in range(10)]
    for n, item in enumerate(items):
        for user in ("UA", "UB"):
            sd.label(item, user, "bug", at=T0 + timedelta(seconds=n % 3))  # many equal timestamps
    with db.read() as s:
        frame = labels_frame(s, sd.project_id, T0, T0 + timedelta(minutes=1), chunk_rows=3)
        later = labels_frame(s, sd.project_id, T0 + timedelta(seconds=1), T0 + timedelta(minutes=1), chunk_rows=3)
    assert len(frame) == 20
    assert not frame.duplicated(["item_id", "member_id"]).any()
    assert len(later) == 2 * sum(1 for n in range(10) if n % 3 >= 1)


def test_unknown_action_is_kept_as_unknown(db: Database) -> None:
    """A value the ORM refuses to write (say, from a newer version sharing the database) still loads."""
    from sqlalchemy import text

    sd = Seeder(db)
    sd.label(sd.item(), "UA", "bug", action="accept")
    with db.session() as s:
        s.execute(text("UPDATE labels SET action = 'teleport'"))
    with db.read() as s:
        frame = labels_frame(s, sd.project_id)
    assert objs(frame["action"]) == ["unknown"]


@pytest.mark.parametrize("ids", [[3, 5, 9], [3, 5, 10**9]])  # a dense table, and a binary search
def test_lookup_by_id(ids: list[int]) -> None:
    from storage.frames import _lookup

    pos, found = _lookup(np.array(ids), np.array([5, 4, 3, 10**9, -1, 9, 2 * 10**9]))
    expected = {3: 0, 5: 1, 9: 2, 10**9: 2}
    wanted = [5, 4, 3, 10**9, -1, 9, 2 * 10**9]
    assert found.tolist() == [w in ids for w in wanted]
    assert [int(p) for p, f in zip(pos, found, strict=True) if f] == [expected[w] for w in wanted if w in ids]
