"""Image items: checking and storing image files at import (`store`, `files`), uploading them to Slack
ahead of demand (`uploads`), and showing them when an example is served (`serving`)."""

from __future__ import annotations

from bot.services.images.files import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageInfo, ImageProblem
from bot.services.images.serving import alt_text, image_view, servable, set_aside
from bot.services.images.status import ImageStatus, image_status
from bot.services.images.uploads import (
    UPLOAD_INTERVAL_SECONDS,
    UploadStats,
    retry_failed,
    upload_job,
    upload_pending,
)

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "UPLOAD_INTERVAL_SECONDS",
    "ImageInfo",
    "ImageProblem",
    "ImageStatus",
    "UploadStats",
    "alt_text",
    "image_status",
    "image_view",
    "retry_failed",
    "servable",
    "set_aside",
    "upload_job",
    "upload_pending",
]
