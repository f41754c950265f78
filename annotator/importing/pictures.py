"""Decoding one uploaded image safely: format whitelist, pixel limit before decoding, EXIF
rotation applied, and a display copy that browsers can show."""
import io
import warnings
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError, features

from annotator.importing.report import Rejected

# The decoders Pillow may run on uploaded bytes, and the extension each format is stored under.
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


# MPO (multi-picture JPEG from phones) is opened by the JPEG decoder.
DECODERS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


# The format a rotated image is written in (browsers cannot show TIFF; PNG is lossless).
REENCODE_AS = {"JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP"}


# Formats browsers cannot show: these always get a display copy.
NOT_FOR_BROWSERS = {"TIFF"}


DISPLAY_QUALITY = 85


ROTATED_JPEG_QUALITY = 95


@dataclass
class Picture:
    """A decoded, checked image: the bytes to store (the original unless it was rotated),
    its size after orientation, and a display copy when it needs one."""

    data: bytes
    extension: str
    width: int
    height: int
    display: bytes | None = None
    display_extension: str = ""


def decode_image(data, *, max_pixels, display_max_side):
    """Check and decode image bytes; raises Rejected with the reason."""
    if not data:
        raise Rejected("The file is empty.")
    image = _open_checked(data, max_pixels)
    fmt = image.format
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    stored, extension = data, EXTENSIONS[fmt]
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        image = ImageOps.exif_transpose(image)
        stored, extension = _encode_rotated(image, fmt)
    picture = Picture(stored, extension, image.width, image.height)
    if max(image.size) > display_max_side or fmt in NOT_FOR_BROWSERS:
        picture.display, picture.display_extension = _display_copy(image, display_max_side)
    return picture


def _open_checked(data, max_pixels):
    """The fully decoded image, after checking its pixel count from the header alone."""
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns between its limit and twice that: refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=DECODERS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise Rejected(f"The image has more pixels than the decoder allows ({exc}). Downscale it first.") from exc
        except UnidentifiedImageError as exc:
            raise Rejected("This file is not an image that can be read (PNG, JPEG, GIF, WebP, BMP or TIFF).") from exc
        except Exception as exc:
            raise Rejected(f"This file could not be read as an image ({type(exc).__name__}: {exc}).") from exc
        width, height = image.size
        if width < 1 or height < 1:
            raise Rejected("The image has no pixels.")
        if width * height > max_pixels:
            raise Rejected(
                f"The image is {width:,} x {height:,} = {width * height:,} pixels and the limit is "
                f"{max_pixels:,} pixels. Downscale it before importing."
            )
        try:
            image.verify()
            image = Image.open(io.BytesIO(data), formats=DECODERS)
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise Rejected(f"The image has more pixels than the decoder allows ({exc}). Downscale it first.") from exc
        except Exception as exc:  # truncated or corrupt data surfaces as many exception types
            raise Rejected(
                f"The image is damaged or truncated and could not be decoded ({type(exc).__name__}: {exc})."
            ) from exc
    return image


def _has_alpha(image):
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _encode_rotated(image, fmt):
    """The rotated image in its own format where that is a common one, else PNG."""
    target = REENCODE_AS.get(fmt, "PNG")
    options = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if image.info.get("exif"):
        options["exif"] = image.info["exif"]  # the camera data, minus the orientation tag
    if target == "JPEG":
        options["quality"] = ROTATED_JPEG_QUALITY
        if image.mode not in ("L", "RGB", "CMYK"):
            image = image.convert("RGB")
    elif target == "WEBP":
        options["quality"] = ROTATED_JPEG_QUALITY
    elif image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=target, **options)
    return buffer.getvalue(), EXTENSIONS[target]


def _display_copy(image, side):
    """A copy for the labeling page: at most `side` pixels on its longest side, JPEG, or WebP
    when the image has transparency."""
    alpha = _has_alpha(image)
    image = image.convert("RGBA" if alpha else ("L" if image.mode in ("1", "L") else "RGB"))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if alpha and features.check("webp"):
        image.save(buffer, format="WEBP", quality=DISPLAY_QUALITY)
        return buffer.getvalue(), "webp"
    if alpha:
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image.save(buffer, format="JPEG", quality=DISPLAY_QUALITY, optimize=True)
    return buffer.getvalue(), "jpg"
