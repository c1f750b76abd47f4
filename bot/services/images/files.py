"""Image files: what an image is by its content (never its name), whether it can be read, and the forms
Slack and a vision model take.

Accepted: PNG, JPEG, GIF and WebP, up to `MAX_IMAGE_BYTES` and `MAX_IMAGE_PIXELS`. Slack's image blocks
show PNG, JPEG and GIF only, so a WebP file is uploaded as PNG; vision models take PNG, JPEG, WebP and
non-animated GIF, so an animated GIF is sent to the model as its first frame (PNG).
"""

from __future__ import annotations

import base64
import hashlib
import io
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.core.errors import LabelbotError

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # per file: sent base64 (+33%) in every drafting request, stored once
MAX_IMAGE_PIXELS = 40_000_000  # width x height: refuses decompression bombs, and Slack would shrink it anyway
MAX_URL_CHARS = 3000  # Slack's image_url limit
MIME_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
SLACK_SHOWS = frozenset({"image/png", "image/jpeg", "image/gif"})  # image blocks (slack_file and image_url)
URL_EXTENSIONS_SLACK_SHOWS = (".png", ".jpg", ".jpeg", ".gif")
FORMATS_TEXT = "PNG, JPEG, GIF or WebP"


class ImageProblem(LabelbotError, ValueError):
    """A file or URL that cannot be an item's image; the message says why (for an import error line)."""


def sniff(data: bytes) -> str | None:
    """The MIME type from the file's first bytes (its signature), or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class ImageInfo:
    """An image file checked at import: what Slack, the model and the exports need to know about it."""

    sha256: str
    mime: str
    width: int
    height: int
    size: int

    @property
    def extension(self) -> str:
        return MIME_EXTENSIONS[self.mime]


def megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def inspect(data: bytes) -> ImageInfo:
    """Check an image's bytes: a PNG, JPEG, GIF or WebP by content, within the limits, and decodable
    to its last pixel. Raises ImageProblem saying what is wrong."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageProblem(f"is {megabytes(len(data))}; images can be at most {megabytes(MAX_IMAGE_BYTES)}")
    if not data:
        raise ImageProblem("is empty")
    mime = sniff(data)
    if mime is None:
        raise ImageProblem(f"is not a {FORMATS_TEXT} image (judged by its content, not its name)")
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageProblem(
                        f"is {width}x{height} pixels; images can have at most {MAX_IMAGE_PIXELS // 1_000_000} "
                        "million pixels"
                    )
                if im.format == "JPEG":
                    im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))  # decode at 1/8: same checks
                im.load()
    except ImageProblem:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageProblem(f"has too many pixels; images can have at most {MAX_IMAGE_PIXELS // 1_000_000} million "
                           "pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        detail = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ImageProblem(f"looks like a {MIME_EXTENSIONS[mime].upper()} file but cannot be read ({detail})") from None
    if width < 1 or height < 1:
        raise ImageProblem("has no pixels")
    return ImageInfo(hashlib.sha256(data).hexdigest(), mime, width, height, len(data))


def check_url(ref: str) -> list[str]:
    """Problems with an image URL (empty: fine). Slack fetches it, so it must be a public https:// URL."""
    problems = []
    if len(ref) > MAX_URL_CHARS:
        problems.append(f"the URL is longer than {MAX_URL_CHARS} characters (Slack's limit)")
    parts = urlsplit(ref)
    if parts.scheme.lower() != "https":
        problems.append("image URLs must start with https://")
    elif not parts.hostname or any(c.isspace() for c in ref):
        problems.append("is not a valid https:// URL")
    return problems


def is_url(ref: str) -> bool:
    return "://" in ref[:12]


def url_shown_by_slack(ref: str) -> bool:
    """False when the URL's path names a format Slack's image blocks do not show (e.g. .webp, .svg)."""
    path = urlsplit(ref).path.lower()
    last = path.rsplit("/", 1)[-1]
    return "." not in last or last.endswith(URL_EXTENSIONS_SLACK_SHOWS)


# ------------------------------------------------------------------------------------------------
# The forms Slack and the model take
# ------------------------------------------------------------------------------------------------


def _png(data: bytes, *, first_frame: bool = False) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if first_frame:
            im.seek(0)
        frame = im.convert("RGBA") if im.mode in ("P", "PA", "LA", "RGBA") or "transparency" in im.info else \
            im.convert("RGB")
        out = io.BytesIO()
        frame.save(out, format="PNG", optimize=False)
        return out.getvalue()


def for_slack(mime: str, data: bytes) -> tuple[str, bytes]:
    """(mime, bytes) to upload: Slack's image blocks show PNG, JPEG and GIF; WebP becomes PNG."""
    if mime in SLACK_SHOWS:
        return mime, data
    return "image/png", _png(data)


def _animated(data: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return bool(getattr(im, "is_animated", False))


def for_model(mime: str, data: bytes) -> tuple[str, bytes]:
    """(mime, bytes) for a vision model: PNG, JPEG and WebP as they are, a GIF as its first frame when
    it is animated (models read still images)."""
    if mime == "image/gif" and _animated(data):
        return "image/png", _png(data, first_frame=True)
    return mime, data


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
