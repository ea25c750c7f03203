"""Decode any image input into an RGB PIL image, or raise ImageError with a stated reason.

One function, `load_rgb`, is the only way images enter facegender, so training, evaluation
and inference see pixels decoded the same way (EXIF orientation, modes, alpha, bombs).
Phone formats: AVIF is Pillow's own (11.3+ wheels); HEIC/HEIF comes from pillow-heif, whose
opener is registered the first time PIL does not recognise a file (importing it costs ~85 ms,
which a folder of JPEGs need not pay).
"""
from __future__ import annotations

import io
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import FacegenderError

# A 30,000 x 30,000 image would need 2.7 GB as RGB; refuse anything over this many pixels
# before decoding (the header alone tells the size, so the refusal costs no memory).
MAX_PIXELS = 40_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
# PIL is left as configured: its own bomb check (over 2 x Image.MAX_IMAGE_PIXELS) is answered as "too_large"
# below, and a truncated file fails to load, never half a face, with PIL's ImageFile.LOAD_TRUNCATED_IMAGES default


class ImageError(FacegenderError):
    """A per-item failure: `reason` is a short machine-readable code, str() the details."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


_heif_lock = threading.Lock()
_heif_state: bool | None = None  # None: not tried yet; True: registered; False: pillow-heif absent


def _register_heif() -> bool:
    """Teach PIL HEIC/HEIF (pillow-heif) on first need; True when it can read them, so the
    caller tries the file again (threads that lose the race wait here and retry too).
    pillow-heif removes the EXIF orientation after applying the file's own rotation (irot/imir),
    so exif_transpose below cannot rotate a HEIC twice."""
    global _heif_state
    with _heif_lock:
        if _heif_state is None:
            try:
                from pillow_heif import register_heif_opener
                register_heif_opener()
                _heif_state = True
            except ImportError:
                _heif_state = False
        return _heif_state


def _open(source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageError("bad_array", f"expected a uint8 HxW or HxWxC array, got {source.dtype} {source.shape}")
        return Image.fromarray(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("empty_file", "the image data is empty (0 bytes)")
        fp = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if path.is_dir():
            raise ImageError("not_a_file", f"{path} is a directory")
        try:
            if path.stat().st_size == 0:
                raise ImageError("empty_file", f"{path} is empty (0 bytes)")
        except FileNotFoundError:
            if os.path.islink(path):
                raise ImageError("broken_symlink", f"{path} is a symlink to a missing file") from None
            raise ImageError("not_found", f"{path} does not exist") from None
        except OSError as e:
            raise ImageError("unreadable", f"{path}: {e.strerror or e}") from None
        fp = path  # PIL opens (and after load, closes) the file itself
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return Image.open(fp)
            except UnidentifiedImageError:
                if not _register_heif():
                    raise
                if isinstance(fp, io.BytesIO):
                    fp.seek(0)
                return Image.open(fp)
    except PermissionError:
        raise ImageError("permission_denied", f"{source} cannot be read (permission denied)") from None
    except FileNotFoundError:
        raise ImageError("not_found", f"{source} disappeared before it could be read") from None
    except IsADirectoryError:
        raise ImageError("not_a_file", f"{source} is a directory") from None
    except Image.DecompressionBombError as e:  # PIL's own guard, far above ours: same reason as ours
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels[1]):,} pixels" if pixels else "the image"
        raise ImageError("too_large", f"{size} is over the limit of {MAX_PIXELS:,} (decompression bomb guard)") from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "not a recognised image format")
    except Exception as e:  # PIL raises many kinds on garbage headers
        raise ImageError("not_an_image", f"cannot read the image header: {e}")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float: rescale, PIL would clip
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))  # alpha over white
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, P


def load_rgb(source, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode `source` (path, bytes, PIL image or uint8 array) to an upright RGB image.

    `min_size` (w, h) lets JPEGs decode at a reduced scale (DCT draft mode) while staying at
    least that large on both sides; this is most of the decode time saved for big photos.
    """
    return load_scaled(source, min_size)[0]


def load_scaled(source, min_size=None) -> tuple[Image.Image, float]:
    """`load_rgb`, and the factor from the decoded image's pixels to the full photo's (1, 2, 4
    or 8: draft decoding shrinks a JPEG by a power of two). `min_size` may also be a function
    of the photo's (width, height), read from the header, giving the (w, h) wanted: a detector
    asks for what its input needs without decoding 12 megapixels to learn the size."""
    img = _open(source)
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError("too_large", f"{w}x{h} pixels is over the limit of {MAX_PIXELS:,} (decompression bomb guard)")
    if w < 1 or h < 1:
        raise ImageError("empty_image", f"image has size {w}x{h}")
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)  # animated GIF/WebP/APNG: the first frame
        if callable(min_size):
            min_size = min_size(w, h)
        if min_size is not None and img.format == "JPEG":
            side = max(min_size)  # EXIF may swap axes; ask for the larger side on both
            img.draft("RGB", (side, side))
        img.load()
        scale = max(w, h) / max(img.size)
        if img is source:  # the caller's image: turned upright in a copy
            img = ImageOps.exif_transpose(img)
        else:  # ours: in place (a copy of a 1000x750 decode costs ~5 ms; most photos need no turn)
            ImageOps.exif_transpose(img, in_place=True)
        return _to_rgb(img), scale
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("too_large", "not enough memory to decode the image")
    except Exception as e:  # PIL's decoders raise OSError, SyntaxError, ValueError, struct.error...
        text = str(e) or type(e).__name__
        reason = "truncated" if "truncated" in text or "broken data stream" in text else "corrupt"
        raise ImageError(reason, f"cannot decode the image: {text}")
