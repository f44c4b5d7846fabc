"""Case photos: decode, turn upright, shrink, and re-encode so no EXIF or GPS metadata survives."""

from __future__ import annotations

import io
import logging

from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ValidationFailed

LOGGER = logging.getLogger(__name__)

MAX_BYTES = 15 * 1024 * 1024
MAX_SIDE = 2048
MAX_PIXELS = 60_000_000  # refuse decompression bombs before decoding them


def clean_image(data: bytes) -> tuple[bytes, str, int, int]:
    """Return (JPEG bytes, mime, width, height) of an uploaded photo, without any metadata.

    The orientation tag is applied to the pixels first, so the photo stays upright once the
    tag is gone; everything else (EXIF, GPS, XMP, ICC comments) is dropped by re-encoding.
    """
    if not data:
        raise ValidationFailed("the photo is empty", field="photo")
    if len(data) > MAX_BYTES:
        raise ValidationFailed(
            f"the photo has {len(data)} bytes; at most {MAX_BYTES} are accepted", field="photo"
        )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > MAX_PIXELS:
                raise ValidationFailed(
                    f"the photo is {probe.width}×{probe.height} pixels; at most {MAX_PIXELS} "
                    "pixels are accepted",
                    field="photo",
                )
            probe.load()
            image = ImageOps.exif_transpose(probe)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValidationFailed(
            "the photo is not an image Pillow can read (JPEG, PNG, WebP …)", field="photo"
        ) from exc
    image = image.convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    # A fresh image: no exif=, no icc_profile=, no comment — nothing of the upload's metadata.
    clean = Image.new("RGB", image.size)
    clean.paste(image)
    clean.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue(), "image/jpeg", clean.width, clean.height
