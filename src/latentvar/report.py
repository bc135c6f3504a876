"""Self-contained HTML reports: images are embedded as data URIs, so one file travels alone."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence

import numpy as np

from latentvar.io import atomic_write_text

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img.pix { image-rendering: pixelated; }
.note { color: #555; font-size: 0.92em; max-width: 60em; }
figure { display: inline-block; margin: 0.4em; text-align: center; }
figcaption { font-size: 0.8em; color: #555; }
"""


def png_bytes(image, compress_level: int = 6) -> bytes:
    """PNG bytes of a PIL image or an array (h, w) / (h, w, 3|4), floats in [0, 1] or uint8 (zlib level
    ``compress_level``: 1 encodes a 1-Mpx photo in ~40 ms, for a web page)."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        image = Image.fromarray(arr)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def figure_bytes(fig, dpi: int = 110) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def jpeg_bytes(image, quality: int = 85) -> bytes:
    """JPEG bytes of an RGB uint8 array (h, w, 3): photos in a report at a tenth of their PNG size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def img(data: bytes, width: int | None = None, alt: str = "", pixelated: bool = False) -> str:
    mime = "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"
    uri = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    w = f' width="{width}"' if width else ""
    cls = ' class="pix"' if pixelated else ""
    return f'<img src="{uri}"{w}{cls} alt="{html.escape(alt)}">'


def table(headers: Sequence[str], rows: Sequence[Sequence], fmt: str = "{:.4g}") -> str:
    def cell(v):
        if isinstance(v, float):
            return fmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, sections: Sequence[str]) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def write(path: str | os.PathLike, title: str, sections: Sequence[str]):
    return atomic_write_text(path, page(title, sections))
