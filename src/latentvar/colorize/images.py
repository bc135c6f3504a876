"""Images in and out: image files / folders (any mode) -> RGBA uint8 squares; RGBA -> (L, ab, bins).

Reading (`read_image`, `read_image_rgb_uint8`; `to_rgba` for a PIL image) follows these rules:
- formats JPEG, PNG, TIFF, BMP, GIF (first frame, as for any animation), WebP, AVIF (`IMAGE_SUFFIXES`);
- EXIF orientation is applied: a rotated phone photo comes out upright;
- an embedded ICC profile is converted to sRGB (perceptual intent); no profile means sRGB, and a broken or
  mismatched one is ignored. CMYK goes through its profile, else Pillow's plain CMYK -> RGB (Pillow undoes
  the inversion of Adobe CMYK JPEGs);
- grey, palette, 16-bit, LA/RGBA: -> 8-bit sRGB, alpha kept. 16-bit grey is rounded (v * 255 / 65535);
  Pillow itself reduces 16-bit RGB(A) to its high byte (within one level of that). Pixels are converted in
  row bands: the decoded image and the result are the only full-size copies (+0.77 GB for 108 Mpx RGB);
- up to `MAX_PIXELS` (200 Mpx) is read, Pillow's decompression-bomb guard (warning at 89, error at 179
  Mpx) being lifted while our reads run; a larger image is refused before it is decoded;
- a corrupt, truncated, empty, non-image or too large file raises `ImageReadError`, a ValueError naming
  the file (so the CLI prints `error: images: ...`, status 2); a missing file raises FileNotFoundError.
Folders: unreadable files are skipped and counted, never fatal. Images are centre-cropped to a square and
resized (Lanczos on premultiplied alpha). Alpha is composited on white later (`lab.composite_on_white`).
"""

from __future__ import annotations

import io
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import Tensor

from latentvar.colorize.lab import rgb_to_lab, to_float_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".avif")
FORMATS = "JPEG/PNG/TIFF/BMP/GIF/WebP/AVIF"
MAX_PIXELS = 200_000_000
_BAND_BYTES = 1 << 24  # rows converted at a time: about 16 MB of pixels
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_DEEP_GREY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # 32-bit, 16-bit, float
_GREY_MODES = ("1", "L", "LA", "La", *_DEEP_GREY_MODES)
_MODES = (*_GREY_MODES, "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr")


class ImageReadError(ValueError):
    """A file that cannot be read as an image: corrupt, truncated, empty, not an image, or too large."""


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than the reader's limit (refused before it is decoded)."""

    def __init__(self, message: str, width: int, height: int):
        super().__init__(message)
        self.width, self.height = width, height


@dataclass
class ImageFolder:
    """Images of a folder (recursive), as RGBA uint8 (n, size, size, 4), with their paths and the skips."""

    images: np.ndarray
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursive), sorted; ``root`` may also be a single file."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValueError(f"data: expected 'twemoji' or an existing folder of images, got {str(root)!r}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _label(path) -> str:
    """A file's name for messages: its path, or a file object's ``name`` (an upload: 'the upload')."""
    return str(path) if isinstance(path, (str, os.PathLike)) else str(getattr(path, "name", "the upload"))


def _cannot_read(path, why: str) -> ImageReadError:
    return ImageReadError(f"images: cannot read {_label(path)!r} as an image (expected {FORMATS}; {why})")


_limit_lock, _limit_users, _limit_saved = threading.Lock(), 0, None


@contextmanager
def _our_pixel_limit():
    """Lift Pillow's decompression-bomb limit while (any of) our reads run; `MAX_PIXELS` is checked instead."""
    global _limit_users, _limit_saved
    from PIL import Image

    with _limit_lock:
        if _limit_users == 0:
            _limit_saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


def _pil(path, call, *args):
    """Call Pillow on a file; its errors on a bad one (OSError, SyntaxError, struct.error, ...) -> ImageReadError."""
    from PIL import UnidentifiedImageError

    try:
        return call(*args)
    except (FileNotFoundError, MemoryError):
        raise
    except Exception as err:
        why = "cannot identify image file" if isinstance(err, UnidentifiedImageError) else str(err)
        raise _cannot_read(path, f"PIL: {why}") from None


def _decode(path, max_pixels: int | None = None):
    """Open one file (a path or a binary file object), check its size, decode it (first frame) -> a loaded
    PIL image."""
    from PIL import Image

    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    with _our_pixel_limit():
        im = _pil(path, Image.open, path)
        try:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageTooLargeError(
                    f"images: cannot read {_label(path)!r}: {w}×{h} = {w * h:,} pixels is over the limit of "
                    f"{max_pixels:,} pixels",
                    w,
                    h,
                )
            _pil(path, im.load)  # decode now, so truncation surfaces here
            if im.mode not in _MODES:
                raise _cannot_read(path, f"pixel mode {im.mode} is not supported")
        except BaseException:
            im.close()
            raise
    return im


def _to_srgb_transform(im, out_mode: str):
    """(mode the band must be in, ImageCms transform to sRGB ``out_mode``) for the embedded profile, or None."""
    from PIL import ImageCms

    if not im.info.get("icc_profile"):
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        space = profile.profile.xcolor_space.strip()
        if space == "RGB" and im.mode not in _GREY_MODES + ("CMYK",):
            in_mode = out_mode
        elif space == "CMYK" and im.mode == "CMYK":
            in_mode, out_mode = "CMYK", "RGB"
        elif space == "GRAY" and im.mode in _GREY_MODES:
            in_mode, out_mode = "L", "RGB"
        else:
            return None
        srgb, intent = ImageCms.createProfile("sRGB"), ImageCms.Intent.PERCEPTUAL
        return in_mode, ImageCms.buildTransform(profile, srgb, in_mode, out_mode, intent)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):  # broken profile: take pixels as sRGB
        return None


def _to_8bit_grey(band, top: int):
    """An I;16 / I band -> L, v * 255 / top rounded; an F band: [0, 1] -> [0, 255]."""
    from PIL import Image

    arr = np.asarray(band)
    if band.mode == "F":
        return Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "L")
    arr = np.clip(arr, 0, top).astype(np.int64)
    return Image.fromarray(((arr * 255 + top // 2) // top).astype(np.uint8), "L")


def _pixels(im, rgba: bool) -> np.ndarray:
    """A loaded, upright PIL image -> sRGB uint8 (h, w, 4) if ``rgba`` or it has alpha, else (h, w, 3);
    converted (to 8 bits, through the profile, to RGB(A)) a band of rows at a time, into one array."""
    from PIL import ImageCms

    has_alpha = im.mode in _ALPHA_MODES or "transparency" in im.info
    out_mode = "RGBA" if rgba or has_alpha else "RGB"
    cms = _to_srgb_transform(im, out_mode)
    top = 65535 if im.mode.startswith("I;16") or (im.mode == "I" and im.getextrema()[1] > 255) else 255
    w, h = im.size
    out = np.empty((h, w, len(out_mode)), np.uint8)
    rows = max(1, _BAND_BYTES // (4 * w))
    for y in range(0, h, rows):
        band = im.crop((0, y, w, min(h, y + rows)))
        if band.mode in _DEEP_GREY_MODES:
            band = _to_8bit_grey(band, top)
        if cms is not None:
            in_mode, transform = cms
            alpha = band.convert("RGBA").getchannel("A") if has_alpha and in_mode == "L" else None
            band = ImageCms.applyTransform(band.convert(in_mode) if band.mode != in_mode else band, transform)
            if alpha is not None:
                band.putalpha(alpha)
        if band.mode != out_mode:
            band = band.convert(out_mode)
        out[y : y + rows] = np.frombuffer(band.tobytes(), np.uint8).reshape(-1, w, len(out_mode))
    return out


def _upright(im, in_place: bool):
    """Apply the EXIF orientation, if any (unreadable EXIF: leave the image as it is)."""
    from PIL import ImageOps

    try:
        turned = int(im.getexif().get(0x0112, 1)) in range(2, 9)  # the Orientation tag
    except Exception:
        turned = False
    if turned and in_place:
        ImageOps.exif_transpose(im, in_place=True)
    return ImageOps.exif_transpose(im) if turned and not in_place else im


def read_image_rgb_uint8(path, rgba: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """One image file (a path, or a binary file object such as ``io.BytesIO(upload)``) -> upright sRGB
    uint8 (h, w, 3), or (h, w, 4) when it has alpha (or ``rgba``). Raises ImageReadError (a ValueError) on
    a corrupt or non-image file, ImageTooLargeError (one) on a file over ``max_pixels`` (default
    `MAX_PIXELS`)."""
    im = _decode(path, max_pixels)
    try:
        return _pixels(_upright(im, in_place=True), rgba)
    finally:
        im.close()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file -> upright sRGB RGBA uint8 (h, w, 4). Raises ImageReadError on a bad file."""
    return read_image_rgb_uint8(path, rgba=True)


def to_rgba(im) -> np.ndarray:
    """A PIL image of any mode -> upright sRGB RGBA uint8 (h, w, 4), by the same rules as `read_image`."""
    if im.mode not in _MODES:
        im = im.convert("RGBA")  # e.g. LAB, HSV: Pillow's own conversion, no profile
    return _pixels(_upright(im, in_place=False), rgba=True)


def square_resize(rgba: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to (size, size, 4), Lanczos on premultiplied alpha."""
    from PIL import Image

    h, w = rgba.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(rgba[top : top + side, left : left + side])
    if side == size:
        return crop
    pre = Image.fromarray(crop, "RGBA").convert("RGBa")
    return np.asarray(pre.resize((size, size), Image.Resampling.LANCZOS).convert("RGBA"))


def load_image_folder(root: str | os.PathLike, size: int) -> ImageFolder:
    """Every readable image under ``root`` as RGBA (n, size, size, 4); unreadable ones are skipped."""
    if not isinstance(size, int) or size < 4 or size % 4:
        raise ValueError(f"size: expected a positive multiple of 4 (pixels per side), got {size!r}")
    images, paths, skipped = [], [], []
    for path in list_images(root):
        try:
            images.append(square_resize(read_image(path), size))
            paths.append(path)
        except (ImageReadError, OSError, ValueError) as err:
            skipped.append((path, f"{type(err).__name__}: {err}"))
    stack = np.stack(images) if images else np.zeros((0, size, size, 4), np.uint8)
    return ImageFolder(stack, paths, skipped)


def rgba_to_lab(images) -> tuple[Tensor, Tensor]:
    """RGBA/RGB uint8 (..., h, w, 3|4) -> (L (..., h, w), ab (..., h, w, 2)), alpha composited on white."""
    lab = rgb_to_lab(to_float_rgb(images))
    return lab[..., 0].contiguous(), lab[..., 1:].contiguous()
