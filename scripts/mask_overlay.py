"""Draw mask JSON files over their photos, to check by eye that the polygons follow the regions.

    PYTHONPATH=src python scripts/mask_overlay.py --data data-cache/photos --masks src/latentvar/data/photo_masks \
        --out /tmp/overlays [--grid 50]

Writes OUT/<mask stem>.png per mask: the photo with each region tinted in its own colour (unlabelled
pixels darkened), the region boundaries in white and each label written at its largest polygon's centre;
``--grid N`` draws a coordinate grid every N px instead (for drawing new polygons).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from latentvar.colorize.masks import find_image, read_mask_folder, read_masks
from latentvar.colorize.segscore import boundaries
from latentvar.io import atomic_write_bytes

COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                    [0, 128, 128], [170, 110, 40]])  # fmt: skip


def overlay(rgb: np.ndarray, labels: np.ndarray, names: list[str], polygons) -> Image.Image:
    out = rgb.astype(np.float64) * 0.75
    for i in range(len(names)):
        out[labels == i] += 0.25 * COLOURS[i % len(COLOURS)]
    out[labels < 0] = rgb[labels < 0] * 0.3
    edge = boundaries(labels)
    out[edge] = COLOURS[np.maximum(labels[edge], 0) % len(COLOURS)] * 0.5 + 127
    im = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for name, polys in zip(names, polygons, strict=True):
        big = max(polys, key=len)
        x, y = big.mean(0)
        draw.text((x - 3 * len(name), y - 5), name, fill=(0, 0, 0))
        draw.text((x - 3 * len(name) - 1, y - 6), name, fill=(255, 255, 255))
    return im


def grid(rgb: np.ndarray, step: int) -> Image.Image:
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    for x in range(0, rgb.shape[1], step):
        draw.line([(x, 0), (x, rgb.shape[0])], fill=(255, 0, 0) if x % (2 * step) == 0 else (255, 255, 0))
        draw.text((x + 1, 1), str(x), fill=(255, 255, 255))
    for y in range(0, rgb.shape[0], step):
        draw.line([(0, y), (rgb.shape[1], y)], fill=(255, 0, 0) if y % (2 * step) == 0 else (255, 255, 0))
        draw.text((1, y + 1), str(y), fill=(255, 255, 255))
    return im


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="Photo corpus or folder holding the photos.")
    ap.add_argument("--masks", type=Path, required=True, help="A mask JSON file or a folder of them.")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--grid", type=int, default=0)
    args = ap.parse_args()
    masks = read_mask_folder(args.masks) if args.masks.is_dir() else [read_masks(args.masks)]
    for m in masks:
        rgb = np.asarray(Image.open(find_image(m, args.data)).convert("RGB"))
        im = (
            grid(rgb, args.grid)
            if args.grid
            else overlay(rgb, m.labels(), m.names, [p for _, p in m.regions])
        )
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        atomic_write_bytes(args.out / f"{Path(m.path).stem}.png", buf.getvalue())
        print(args.out / f"{Path(m.path).stem}.png")


if __name__ == "__main__":
    main()
