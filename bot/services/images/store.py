"""Images at import: each `image` reference of a file checked once, stored once per content, and queued
for upload to the project's workspace.

A reference is a path (relative to the import file's folder; absolute paths work too) or an https://
URL. Paths are read, checked by content and stored in the database (`images`, one row per SHA-256),
so that the server, the drafting workers and the exports need no access to the lead's disk. URLs are
kept as they are: Slack fetches them itself, and so does the vision model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.core.enums import UploadStatus
from bot.services.images.files import (
    MAX_IMAGE_BYTES,
    ImageInfo,
    ImageProblem,
    check_url,
    inspect,
    is_url,
    megabytes,
    url_shown_by_slack,
)
from storage.models import Image, ImageUpload

CHUNK = 500
STORE_BATCH_BYTES = 32 * 1024 * 1024  # image bytes per INSERT batch at import
PRIORITY_GOLD = 0  # gold images go first: new people take the quiz before they label
PRIORITY_ITEM = 1


@dataclass(frozen=True)
class Checked:
    """A checked reference: a URL (`info` None) or a file with its `info`."""

    ref: str
    path: Path | None = None
    info: ImageInfo | None = None

    @property
    def is_url(self) -> bool:
        return self.path is None


@dataclass
class Catalog:
    """The images of one import file, each checked once (a file named by many rows is read once)."""

    base: Path
    _by_path: dict[Path, ImageInfo | str] = field(default_factory=dict)
    _paths: dict[str, Path] = field(default_factory=dict)  # sha256 -> a path holding it
    _unshown: set[str] = field(default_factory=set)

    @property
    def unshown_urls(self) -> int:
        """URLs whose name says a format Slack's image blocks do not show (e.g. .webp)."""
        return len(self._unshown)

    def check(self, ref: str) -> Checked:
        """Check a reference; raises ImageProblem with the reason."""
        if is_url(ref):
            problems = check_url(ref)
            if problems:
                raise ImageProblem("; ".join(problems))
            if not url_shown_by_slack(ref):
                self._unshown.add(ref)
            return Checked(ref)
        path = (self.base / ref).resolve()
        found = self._by_path.get(path)
        if found is None:
            found = self._inspect(path, ref)
            self._by_path[path] = found
        if isinstance(found, str):
            raise ImageProblem(found)
        self._paths.setdefault(found.sha256, path)
        return Checked(ref, path, found)

    def _inspect(self, path: Path, ref: str) -> ImageInfo | str:
        try:
            if not path.is_file():
                return (f"image file {ref!r} not found (paths are relative to the import file's folder, "
                        f"{self.base})")
            size = path.stat().st_size
            if size > MAX_IMAGE_BYTES:  # not read at all
                return f"image {ref!r} is {megabytes(size)}; images can be at most {megabytes(MAX_IMAGE_BYTES)}"
            return inspect(path.read_bytes())
        except ImageProblem as e:
            return f"image {ref!r} {e}"
        except OSError as e:
            return f"image file {ref!r} cannot be read ({e.strerror or e})"

    def store(self, session: Session, now: datetime) -> dict[str, int]:
        """Store every file image of the import not stored yet (one row per content), in batches of up
        to STORE_BATCH_BYTES; returns sha256 -> image id for all of them."""
        wanted = list(self._paths)
        ids = _image_ids(session, wanted)
        batch: list[dict[str, Any]] = []
        size = 0
        for sha in wanted:
            if sha in ids:
                continue
            path = self._paths[sha]
            data = path.read_bytes()
            info = inspect(data)  # the file may have changed since it was checked: check what is stored
            if info.sha256 != sha:
                raise ImageProblem(f"image file {str(path)!r} changed during the import; import again")
            batch.append(dict(sha256=sha, mime=info.mime, width=info.width, height=info.height, size=info.size,
                              data=data, created_at=now))
            size += len(data)
            if size >= STORE_BATCH_BYTES:
                ids.update(_insert_images(session, batch))
                batch, size = [], 0
        if batch:
            ids.update(_insert_images(session, batch))
        return ids


def _image_ids(session: Session, shas: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(shas), CHUNK):
        chunk = shas[start : start + CHUNK]
        ids.update(dict(session.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(chunk))).all()))
    return ids


def _insert_images(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert image rows, skipping contents stored meanwhile (another import at the same time); returns
    sha256 -> id for all of them."""
    stmt = _dialect_insert(session, Image).on_conflict_do_nothing(index_elements=["sha256"])
    session.execute(stmt, rows)
    return _image_ids(session, [r["sha256"] for r in rows])


def _dialect_insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:  # pragma: no cover - the design supports SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database {dialect}")
    return insert(table)


def queue_uploads(session: Session, team_id: str, images: Iterable[tuple[int, int]], now: datetime) -> int:
    """Queue (image id, priority) pairs for upload to `team_id`; pairs queued or uploaded already are
    left as they are, except that gold raises a queued image's priority. Returns how many were new."""
    best: dict[int, int] = {}
    for image_id, priority in images:
        best[image_id] = min(priority, best.get(image_id, priority))
    if not best:
        return 0
    rows = [
        {"image_id": image_id, "team_id": team_id, "status": UploadStatus.PENDING.value, "priority": priority,
         "attempts": 0, "created_at": now}
        for image_id, priority in sorted(best.items())
    ]
    stmt = _dialect_insert(session, ImageUpload).on_conflict_do_nothing(index_elements=["image_id", "team_id"])
    new = 0
    for start in range(0, len(rows), CHUNK):
        new += len(session.execute(stmt.returning(ImageUpload.id), rows[start : start + CHUNK]).all())
    gold = [i for i, p in best.items() if p == PRIORITY_GOLD]
    for start in range(0, len(gold), CHUNK):
        session.execute(
            update(ImageUpload)
            .where(ImageUpload.team_id == team_id, ImageUpload.image_id.in_(gold[start : start + CHUNK]),
                   ImageUpload.priority > PRIORITY_GOLD)
            .values(priority=PRIORITY_GOLD)
            .execution_options(synchronize_session=False)
        )
    return new
