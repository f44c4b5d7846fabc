"""Case photos: decode within a memory budget, turn upright, shrink, and re-encode so no EXIF or
GPS metadata survives.

Limits (an upload must not exhaust the server):

- ``MAX_PHOTOS_PER_REQUEST`` (6) photos in one request, ``MAX_PHOTOS_PER_CASE`` (20) on a case;
- ``MAX_BYTES`` (15 MiB) a file; JPEG, PNG and WebP only (no exotic decoders);
- a JPEG is decoded at a reduced scale (1/2, 1/4, 1/8: libjpeg's DCT scaling) to the smallest
  size not below the stored ``MAX_SIDE`` (2560 px long side), so a 48 Mpx phone photo costs about
  12 Mpx of memory; any image whose decoded size would still exceed ``MAX_DECODE_PIXELS`` (24 Mpx,
  about 100 MB) is refused from its header, before a pixel is decoded; the source may have at most
  ``MAX_SOURCE_PIXELS`` (Pillow's decompression-bomb limit is set to it);
- at most ``DECODE_CONCURRENCY`` (2) decodes at a time in a process; a request that cannot get
  a turn within ``DECODE_WAIT_SECONDS`` answers 503 with ``Retry-After``.

Anonymous uploads are also limited per address (``app.services.ratelimit``, see the API).
"""

from __future__ import annotations

import io
import logging
import threading

from PIL import Image, UnidentifiedImageError

from app.errors import AppError, ValidationFailed

LOGGER = logging.getLogger(__name__)

MAX_BYTES = 15 * 1024 * 1024
MAX_SIDE = 2560
MAX_SOURCE_PIXELS = 120_000_000
MAX_DECODE_PIXELS = 24_000_000
MAX_PHOTOS_PER_REQUEST = 6
MAX_PHOTOS_PER_CASE = 20
DECODE_CONCURRENCY = 2
DECODE_WAIT_SECONDS = 30
FORMATS = ("JPEG", "PNG", "WEBP")

Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS
_DECODES = threading.BoundedSemaphore(DECODE_CONCURRENCY)

# EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class DecoderBusy(AppError):
    """Every decoder of this process is busy: try again shortly."""

    http_status = 503
    code = "busy"


def check_count(count: int, already: int = 0) -> None:
    """Refuse more than ``MAX_PHOTOS_PER_REQUEST`` new photos, or more than
    ``MAX_PHOTOS_PER_CASE`` on a case that has ``already`` some."""
    if count > MAX_PHOTOS_PER_REQUEST:
        raise ValidationFailed(
            f"一次最多上传 {MAX_PHOTOS_PER_REQUEST} 张照片 / at most {MAX_PHOTOS_PER_REQUEST} "
            f"photos per request ({count} sent)",
            field="photo",
        )
    if already + count > MAX_PHOTOS_PER_CASE:
        raise ValidationFailed(
            f"每个事件最多 {MAX_PHOTOS_PER_CASE} 张照片 / a case holds at most "
            f"{MAX_PHOTOS_PER_CASE} photos ({already} stored, {count} sent)",
            field="photo",
        )


def _decode_size(probe: Image.Image) -> tuple[int, int]:
    """Ask the decoder for the smallest size not below MAX_SIDE it can produce cheaply."""
    if probe.format == "JPEG":
        w, h = probe.size
        scale = max(w, h) / MAX_SIDE
        if scale > 1:
            probe.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
    return probe.size


def clean_image(data: bytes) -> tuple[bytes, str, int, int]:
    """Return (JPEG bytes, mime, width, height) of an uploaded photo, without any metadata.

    The orientation tag is applied to the pixels, so the photo stays upright once the tag is
    gone; everything else (EXIF, GPS, XMP, ICC comments) is dropped by re-encoding.
    """
    if not data:
        raise ValidationFailed("the photo is empty", field="photo")
    if len(data) > MAX_BYTES:
        raise ValidationFailed(
            f"the photo has {len(data)} bytes; at most {MAX_BYTES} are accepted", field="photo"
        )
    if not _DECODES.acquire(timeout=DECODE_WAIT_SECONDS):
        raise DecoderBusy(
            "服务器繁忙，请稍后重试 / the server is busy decoding photos; retry shortly",
            retry_after=5,
        )
    try:
        return _clean(data)
    finally:
        _DECODES.release()


def _clean(data: bytes) -> tuple[bytes, str, int, int]:
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
            width, height = probe.size
            if width * height > MAX_SOURCE_PIXELS:
                raise _too_large(width, height)
            decoded_w, decoded_h = _decode_size(probe)
            if decoded_w * decoded_h > MAX_DECODE_PIXELS:
                raise _too_large(width, height)
            orientation = probe.getexif().get(0x0112)
            probe.load()
            image = probe if probe.mode == "RGB" else probe.convert("RGB")
            image.thumbnail((MAX_SIDE, MAX_SIDE))
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        SyntaxError,
    ) as exc:
        raise ValidationFailed(
            "照片无法识别 / the photo is not a JPEG, PNG or WebP image Pillow can read",
            field="photo",
        ) from exc
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    out = io.BytesIO()
    # A fresh image: no exif=, no icc_profile=, no comment — nothing of the upload's metadata.
    clean = Image.new("RGB", image.size)
    clean.paste(image)
    clean.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue(), "image/jpeg", clean.width, clean.height


def _too_large(width: int, height: int) -> ValidationFailed:
    return ValidationFailed(
        f"照片像素过多 / the photo is {width}×{height} pixels; a JPEG may have at most "
        f"{MAX_SOURCE_PIXELS // 1_000_000} million, other formats at most "
        f"{MAX_DECODE_PIXELS // 1_000_000} million",
        field="photo",
    )
