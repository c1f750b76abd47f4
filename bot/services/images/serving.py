"""Images when examples are served: which items can be shown (their image is uploaded to the project's
workspace, or is a URL not set aside), an item's image as Slack shows it, and setting an image aside
when Slack refuses it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from bot.blocks.text import cut
from bot.core.enums import UploadStatus
from bot.core.types import ImageView
from bot.services.images.uploads import MAX_ATTEMPTS
from storage.models import ImageUpload, Item

log = logging.getLogger("labelbot.images")

ALT_MAX = 2000  # Slack's alt_text limit


def servable(team_id: str) -> Any:
    """A condition on `Item`: the item can be shown in `team_id` now. Text items always; an image file
    once uploaded there (`image_uploads`, unique per image and workspace); a URL unless set aside."""
    uploaded = exists().where(
        ImageUpload.image_id == Item.image_id,
        ImageUpload.team_id == team_id,
        ImageUpload.status == UploadStatus.OK.value,
    )
    return and_(Item.image_error.is_(None), or_(Item.image_id.is_(None), uploaded))


def alt_text(item: Item) -> str:
    """What the picture is, for screen readers and when it does not load: the item's text (its caption)
    when it has one, else its id."""
    text = " ".join(item.text.split())
    return cut(text or f"Image {item.external_id}", ALT_MAX)


def image_view(session: Session, item: Item, team_id: str) -> ImageView | None:
    """The item's image as Slack shows it in `team_id` (None for a text item)."""
    if item.image is None:
        return None
    alt = alt_text(item)
    if item.image_id is None:
        return ImageView(alt=alt, url=item.image)
    file_id = session.scalar(
        select(ImageUpload.file_id).where(
            ImageUpload.image_id == item.image_id,
            ImageUpload.team_id == team_id,
            ImageUpload.status == UploadStatus.OK.value,
        )
    )
    return ImageView(alt=alt, file_id=file_id)


def set_aside(session: Session, item: Item, team_id: str, reason: str, now: datetime) -> str:
    """Slack refused to show the item's image (`reason`, e.g. `invalid_blocks`). A URL image is set aside
    for good (the item is not served again); an uploaded file is uploaded again (the file may have been
    deleted from Slack), up to the upload attempts, then given up. Returns what was done, for the log."""
    if item.image is None:
        return "not an image item"
    if item.image_id is None:
        item.image_error = cut(f"Slack could not show {item.image}: {reason}", 2000)
        log.error("image item %s of project %s set aside: Slack could not show its URL %s (%s); "
                  "it is not served again until it is imported with another image",
                  item.external_id, item.project_id, item.image, reason)
        return "set aside"
    upload = session.scalar(
        select(ImageUpload).where(ImageUpload.image_id == item.image_id, ImageUpload.team_id == team_id)
    )
    if upload is None:
        return "no upload"
    again, file_id, attempts = upload.attempts < MAX_ATTEMPTS, upload.file_id, upload.attempts
    session.execute(
        update(ImageUpload)
        .where(ImageUpload.id == upload.id)
        .values(
            status=UploadStatus.PENDING.value if again else UploadStatus.ERROR.value,
            file_id=None, error=cut(f"Slack refused the uploaded file {file_id}: {reason}", 2000),
            retry_at=None, claimed_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if again:
        log.warning("Slack refused image file %s (image %s) in workspace %s: %s; uploading it again",
                    file_id, item.image_id, team_id, reason)
        return "upload again"
    log.error("Slack refused image file %s (image %s) in workspace %s: %s; given up after %d uploads: its "
              "items are not served (labelbot images SLUG --retry-failed)", file_id, item.image_id,
              team_id, reason, attempts)
    return "given up"
