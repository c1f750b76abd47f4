"""Where a project's images stand: how many are uploaded, waiting, failed (and why), set aside."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.enums import UploadStatus
from storage.models import ImageUpload, Item, Project


@dataclass
class ImageStatus:
    slug: str
    team_id: str
    file_items: int = 0  # items with an image file
    url_items: int = 0  # items with an image URL
    images: int = 0  # distinct image files
    uploads: dict[str, int] = field(default_factory=dict)  # upload status -> images
    unqueued: int = 0  # images with no upload row for the workspace (imported before a team change)
    failures: list[tuple[str, int]] = field(default_factory=list)  # (error, images), most frequent first
    set_aside: int = 0  # URL items Slack could not show
    ready_file_items: int = 0  # items whose image file is uploaded to the workspace

    @property
    def waiting_items(self) -> int:
        return self.file_items - self.ready_file_items

    def lines(self) -> list[str]:
        if not self.file_items and not self.url_items:
            return [f"{self.slug}: no image items."]
        out = [f"{self.slug}: {self.file_items} item(s) with an image file ({self.images} distinct image(s)), "
               f"{self.url_items} with an image URL (workspace {self.team_id})."]
        if self.images:
            order = [UploadStatus.OK, UploadStatus.PENDING, UploadStatus.UPLOADING, UploadStatus.ERROR]
            words = {UploadStatus.OK: "uploaded", UploadStatus.PENDING: "waiting", UploadStatus.UPLOADING: "uploading",
                     UploadStatus.ERROR: "failed"}
            parts = [f"{self.uploads.get(s.value, 0)} {words[s]}" for s in order]
            out.append("Image files in Slack: " + ", ".join(parts) + ".")
            if self.waiting_items:
                out.append(f"{self.waiting_items} item(s) are not served until their image is uploaded.")
            if self.unqueued:
                out.append(f"{self.unqueued} image(s) are not queued for this workspace: import the file again "
                           "to queue them.")
        for error, n in self.failures[:5]:
            out.append(f"  {n} image(s): {error}")
        if self.set_aside:
            out.append(f"{self.set_aside} URL item(s) set aside: Slack could not show their image.")
        return out


def image_status(session: Session, project: Project) -> ImageStatus:
    st = ImageStatus(project.slug, project.team_id)
    in_project = (Item.project_id == project.id,)
    st.file_items = int(session.scalar(select(func.count()).where(*in_project, Item.image_id.is_not(None))) or 0)
    st.url_items = int(session.scalar(
        select(func.count()).where(*in_project, Item.image.is_not(None), Item.image_id.is_(None))) or 0)
    st.set_aside = int(session.scalar(select(func.count()).where(*in_project, Item.image_error.is_not(None))) or 0)
    images = select(Item.image_id).where(*in_project, Item.image_id.is_not(None)).distinct().subquery()
    st.images = int(session.scalar(select(func.count()).select_from(images)) or 0)
    joined = (
        select(ImageUpload.status, func.count())
        .join(images, images.c.image_id == ImageUpload.image_id)
        .where(ImageUpload.team_id == project.team_id)
        .group_by(ImageUpload.status)
    )
    st.uploads = {str(k): int(v) for k, v in session.execute(joined)}
    st.unqueued = st.images - sum(st.uploads.values())
    failures = (
        select(ImageUpload.error, func.count())
        .join(images, images.c.image_id == ImageUpload.image_id)
        .where(ImageUpload.team_id == project.team_id, ImageUpload.status == UploadStatus.ERROR.value)
        .group_by(ImageUpload.error)
        .order_by(func.count().desc())
    )
    st.failures = [(str(e), int(n)) for e, n in session.execute(failures)]
    ok = select(ImageUpload.image_id).where(ImageUpload.team_id == project.team_id,
                                            ImageUpload.status == UploadStatus.OK.value)
    st.ready_file_items = int(session.scalar(
        select(func.count()).where(*in_project, Item.image_id.in_(ok.scalar_subquery()))) or 0)
    return st
