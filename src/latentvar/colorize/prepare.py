"""Prepare data sets from registry packages (run once, at set-up; nothing downloads at run time).

- ``build_openmoji``: ``npm pack openmoji@17.0.0``; renders the 4,495 colour SVGs (``color/svg``) with
  cairosvg at 32x32 and labels every pixel by the palette colour it was drawn with -> ``OUT/images/<hex>.png``
  (RGBA) and ``OUT/labels/<hex>.png`` (uint8 class ids). Class 0 is the transparent background, classes 1..
  the palette (``data/color-palette.json``: 24 colours plus the skin tones; 28 in all); anti-aliased
  pixels that are partly transparent are 255 (ignored by the metrics). Graphics CC BY-SA 4.0 (OpenMoji).
- ``build_tuxpaint``: ``apt-get download tuxpaint-stamps-default``, ``dpkg -x``; copies the photo cut-outs
  -> ``OUT/<category>__<name>.png``. A stamp counts as a photo cut-out when it is a PNG (cartoons are
  mostly SVG) outside the ``*cartoon*`` folders, has transparent pixels (its cut-out mask) and at least
  2,000 distinct colours among its opaque pixels (drawings have a few hundred at most).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from latentvar.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from latentvar.progress import progress

OPENMOJI = "openmoji@17.0.0"
TUXPAINT = "tuxpaint-stamps-default"
IGNORE = 255


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i : i + 2], 16) for i in (0, 2, 4))


def openmoji_palette(palette_json: dict) -> list[str]:
    """The palette colours (lower-case hex), in the file's order, skin tones appended, duplicates dropped."""
    colours = [c.lower() for c in palette_json["colors"]]
    for tones in palette_json.get("skintones", {}).values():
        colours += [c.lower() for c in tones]
    return list(dict.fromkeys(colours))


def label_pixels(rgba: np.ndarray, palette_rgb: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 -> (h, w) uint8: 0 transparent, 1 + nearest palette colour, 255 partly transparent."""
    alpha = rgba[..., 3]
    d2 = ((rgba[..., None, :3].astype(np.int32) - palette_rgb.astype(np.int32)) ** 2).sum(-1)
    labels = (1 + d2.argmin(-1)).astype(np.uint8)
    labels[alpha < 64] = 0
    labels[(alpha >= 64) & (alpha < 192)] = IGNORE
    return labels


def build_openmoji(out: str | Path, size: int = 32, limit: int | None = None) -> dict:
    from PIL import Image

    from latentvar.extras import require

    cairosvg = require("cairosvg", "prepare", "rendering OpenMoji's SVGs (colorize prepare openmoji)")

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", OPENMOJI, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (tgz,) = Path(tmp).glob("openmoji-*.tgz")
        with tarfile.open(tgz) as tar:
            names = sorted(m.name for m in tar.getmembers() if m.name.startswith("package/color/svg/"))
            palette = openmoji_palette(json.load(tar.extractfile("package/data/color-palette.json")))
            licence = tar.extractfile("package/LICENSE.txt").read().decode()
            palette_rgb = np.array([_hex_to_rgb(c) for c in palette], np.uint8)
            names = names[:limit] if limit else names
            failed = []
            for name in progress(names, desc="render OpenMoji"):
                stem = Path(name).stem
                try:
                    png = cairosvg.svg2png(
                        bytestring=tar.extractfile(name).read(), output_width=size, output_height=size
                    )
                    with Image.open(io.BytesIO(png)) as im:
                        rgba = np.asarray(im.convert("RGBA"))
                except Exception as err:  # a malformed SVG is skipped and counted, never fatal
                    failed.append((stem, f"{type(err).__name__}: {err}"))
                    continue
                atomic_write_bytes(out / "images" / f"{stem}.png", png)
                labels = Image.fromarray(label_pixels(rgba, palette_rgb), "L")
                buf = io.BytesIO()
                labels.save(buf, format="PNG")
                atomic_write_bytes(out / "labels" / f"{stem}.png", buf.getvalue())
    summary = {
        "source": f"npm:{OPENMOJI} color/svg/*.svg rendered by cairosvg at {size}x{size}",
        "num_images": len(names) - len(failed),
        "failed": failed,
        "classes": ["background (transparent)", *palette],
        "num_classes": 1 + len(palette),
        "ignore_label": IGNORE,
    }
    atomic_write_json(out / "classes.json", summary)
    atomic_write_text(
        out / "LICENSE-openmoji.txt",
        "OpenMoji graphics (https://openmoji.org), npm package openmoji@17.0.0, rendered to 32x32 PNGs and "
        "labelled by palette colour by `latentvar colorize prepare openmoji`. Licensed CC BY-SA 4.0:\n\n"
        + licence,
    )
    return summary


def is_photo_cutout(path: Path, root: Path, min_colours: int = 2000) -> bool:
    from PIL import Image

    if path.name.endswith(("_mirror.png", "_flip.png")) or "cartoon" in str(path.relative_to(root)):
        return False
    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"))
    opaque = rgba[rgba[..., 3] > 200][:, :3].astype(np.int64)
    has_mask = bool((rgba[..., 3] < 255).any())
    return has_mask and len(np.unique(opaque @ np.array([65536, 256, 1]))) >= min_colours


def build_tuxpaint(out: str | Path) -> dict:
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", TUXPAINT], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (deb,) = Path(tmp).glob(f"{TUXPAINT}_*.deb")
        root = Path(tmp) / "root"
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        stamps = root / "usr" / "share" / "tuxpaint" / "stamps"
        pngs = [p for p in sorted(stamps.rglob("*.png")) if is_photo_cutout(p, stamps)]
        out.mkdir(parents=True, exist_ok=True)
        for p in pngs:
            category = "_".join(p.parent.relative_to(stamps).parts) or "stamps"
            shutil.copyfile(p, out / f"{category}__{p.name}")
        copyright_file = root / "usr" / "share" / "doc" / TUXPAINT / "copyright"
        if copyright_file.exists():
            shutil.copyfile(copyright_file, out / "COPYRIGHT-tuxpaint-stamps.txt")
        version = deb.name.split("_")[1]
    summary = {"source": f"deb:{TUXPAINT} {version}", "num_images": len(pngs)}
    atomic_write_json(out / "source.json", summary)
    return summary
