"""What the app computes and says about a session: the session built from an upload (`build_session`), the
views made on first request (`make_view`), the images as PNG, and the JSON of a session or an update.

Everything here may be slow (model calls, image builds, PNG and base64 encoding): the app calls it only
from worker threads behind a capacity limiter, never on the event loop.
"""

from __future__ import annotations

import base64

import numpy as np
import torch

from latentvar import report
from latentvar.colorize import Colorizer
from latentvar.colorize.visual import grey_image, overlay
from latentvar.serve.session import Session
from latentvar.serve.uploads import decode_upload, safe_stem


def png_bytes(image: np.ndarray, level: int = 1) -> bytes:
    """PNG at zlib ``level``: 0 (stored, 1 Mpx in ~27 ms, 3 MB) for what the page shows over loopback,
    1 (~55 ms, 1.3 MB) for base64 in JSON, 6 (the default elsewhere) for a download."""
    return report.png_bytes(image, compress_level=level)


def segment_levels(k: int) -> int:
    """The grey step between segment ids in segments.png: ids are drawn as id × step, so a browser's
    colour handling cannot move one id onto another."""
    return max(1, 255 // max(k - 1, 1))


def segment_png(session: Session) -> np.ndarray:
    return (session.segments * segment_levels(len(session.palettes))).astype(np.uint8)


def build_session(
    colorizer: Colorizer,
    data: bytes,
    name: str | None,
    samples: int,
    seed: int,
    max_pixels: int,
    palette: int,
) -> Session:
    """Decode an upload and colorize it: the session, its grey view, overlay and samples still to make."""
    rgb = decode_upload(data, max_pixels)
    photo = rgb if rgb.shape[-1] == 3 else _on_white(rgb)
    return Session(
        name=safe_stem(name),
        photo=photo,
        colorized=colorizer.colorize(rgb),
        segments=colorizer.segment(rgb, dtype=np.uint8),
        palettes=colorizer.palettes(rgb, palette),
        num_samples=samples,
        make=_Views(colorizer, seed),
    )


class _Views:
    """A session's ``make``: the views the page shows after the colorization. It holds the model and the
    seed only -- the session comes in as an argument, so there is no reference cycle to keep it alive."""

    def __init__(self, colorizer: Colorizer, seed: int):
        self.colorizer, self.seed = colorizer, seed

    def __call__(self, name: str, session: Session) -> np.ndarray:
        if name == "grey":
            return grey_image(session.photo)
        if name == "overlay":
            return overlay(session.image("grey"), session.segments)
        i = int(name.removeprefix("sample-"))  # sample i is drawn with seed + i, whatever the order
        draw = torch.Generator().manual_seed(self.seed + i)
        return self.colorizer.sample(session.photo, 1, generator=draw)[0]


def image_ref(handle: str, session: Session, name: str, encode: str) -> str:
    """An image's URL under the app, or (``encode="base64"``) the image itself as a data: URL -- made
    now if it has not been (a model call: only from a worker thread behind the model's limiter)."""
    if encode == "base64":
        data = png_bytes(segment_png(session) if name == "segments" else session.image(name))
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    version = f"?v={session.version}" if name == "current" else ""
    return f"/api/images/{handle}/{name}.png{version}"


def describe(handle: str, session: Session, encode: str, expires_in: float) -> dict:
    """The JSON of a session (`schema.ColorizeResponse`)."""
    h, w = session.segments.shape
    refs = {n: image_ref(handle, session, n, encode) for n in ("grey", "colorized", "overlay", "current")}
    refs["segments"] = image_ref(handle, session, "segments", encode)
    refs["samples"] = [image_ref(handle, session, f"sample-{i}", encode) for i in range(session.num_samples)]
    return {
        "handle": handle,
        "name": session.name,
        "width": w,
        "height": h,
        "expires_in": expires_in,
        "version": session.version,
        "segment_levels": segment_levels(len(session.palettes)),
        "segments": session.palettes,
        "recoloured": session.recoloured_segments,
        "images": refs,
    }


def update(handle: str, session: Session, encode: str, **extra) -> dict:
    """The JSON of a change of the current image (`schema.ImageUpdate`)."""
    return {
        "handle": handle,
        "version": session.version,
        "recoloured": session.recoloured_segments,
        "image": image_ref(handle, session, "current", encode),
        **extra,
    }


def _on_white(rgba: np.ndarray) -> np.ndarray:
    from latentvar.colorize.lab import to_float_rgb

    return (to_float_rgb(rgba).numpy() * 255 + 0.5).astype(np.uint8)
