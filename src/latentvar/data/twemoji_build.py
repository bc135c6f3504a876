"""Rebuild the embedded Twemoji set, src/latentvar/data/twemoji32/, from the npm registry package.

    python -m latentvar.data.twemoji_build     # npm pack emoji-datasource-twitter@16.0.0 into a temp dir
    python scripts/twemoji_build.py            # the same

Reads the 3,786 images ``img/twitter/64/*.png`` (64x64 RGBA), downsamples each to 32x32 with a 2x2 box
filter on *premultiplied* alpha (so transparent pixels' RGB never bleeds into edges; RGB is
un-premultiplied afterwards and is 0 where alpha is 0), and writes:

- ``atlas<i>.png``: RGBA atlases of up to 1,024 tiles each (a 32x32 grid of 32x32 tiles, row-major),
  every file < 3 MiB;
- ``index.json``: the file names in sorted order (tile i of the whole set is atlas i // 1024, position
  i % 1024), their code points, and the split of each (train/val/test 80/10/10 by the SHA-1 of the file
  name, so the split never depends on the order or on the other files);
- ``LICENSE-twemoji.txt``: the graphics' CC-BY 4.0 notice.

The output is byte-for-byte deterministic for a given package version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGE = "emoji-datasource-twitter"
VERSION = "16.0.0"
TILE = 32
GRID = 32  # tiles per atlas row/column -> 1,024 tiles per atlas
OUT = Path(__file__).resolve().parent / "twemoji32"

LICENSE = """Twemoji graphics, 32x32 copies
================================

The images in this directory are downsampled (64x64 -> 32x32, box filter on premultiplied alpha) copies of
the Twitter emoji images ``img/twitter/64/*.png`` shipped in the npm package
emoji-datasource-twitter@16.0.0 (https://www.npmjs.com/package/emoji-datasource-twitter,
https://github.com/iamcal/emoji-data). They were rebuilt by ``scripts/twemoji_build.py`` from that package.

Graphics: Copyright 2019-2024 Twitter, Inc. (now X Corp.) and other contributors (Twemoji,
https://github.com/jdecked/twemoji), licensed under the Creative Commons Attribution 4.0 International
licence (CC-BY 4.0): https://creativecommons.org/licenses/by/4.0/

Changes made: downsampled to 32x32 pixels and packed into atlas PNGs.
"""


def split_of(name: str) -> str:
    """train / val / test, 80/10/10, from the SHA-1 of the file name alone."""
    bucket = int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def box_downsample(rgba: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 4) uint8 -> (H/f, W/f, 4) uint8: mean over f x f blocks of premultiplied RGBA."""
    x = rgba.astype(np.float64) / 255.0
    a = x[..., 3:]
    premult = np.concatenate([x[..., :3] * a, a], axis=-1)
    h, w = premult.shape[0] // factor, premult.shape[1] // factor
    pooled = premult.reshape(h, factor, w, factor, 4).mean(axis=(1, 3))
    alpha = pooled[..., 3:]
    rgb = np.where(alpha > 0, pooled[..., :3] / np.maximum(alpha, 1e-12), 0.0)
    out = np.concatenate([rgb, alpha], axis=-1)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def fetch(tmp: Path) -> Path:
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=tmp, check=True)
    (tgz,) = tmp.glob(f"{PACKAGE}-{VERSION}.tgz")
    with tarfile.open(tgz) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/img/twitter/64/")]
        tar.extractall(tmp, members=members, filter="data")
    return tmp / "package" / "img" / "twitter" / "64"


def build(src: Path, out: Path) -> dict:
    names = sorted(p.name for p in src.glob("*.png"))
    tiles = []
    for name in names:
        with Image.open(src / name) as im:
            rgba = np.asarray(im.convert("RGBA"))
        if rgba.shape != (2 * TILE, 2 * TILE, 4):
            raise ValueError(f"{name}: expected 64x64 RGBA, got {rgba.shape}")
        tiles.append(box_downsample(rgba, 2))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("atlas*.png"):
        old.unlink()
    per_atlas = GRID * GRID
    atlases = []
    for a, start in enumerate(range(0, len(tiles), per_atlas)):
        chunk = tiles[start : start + per_atlas]
        rows = -(-len(chunk) // GRID)
        sheet = np.zeros((rows * TILE, GRID * TILE, 4), np.uint8)
        for i, tile in enumerate(chunk):
            r, c = divmod(i, GRID)
            sheet[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = tile
        fname = f"atlas{a}.png"
        Image.fromarray(sheet, "RGBA").save(out / fname, optimize=True)
        atlases.append(fname)
    index = {
        "source": f"npm:{PACKAGE}@{VERSION} img/twitter/64/*.png",
        "resample": "2x2 box filter on premultiplied alpha (64x64 -> 32x32)",
        "tile": TILE,
        "tiles_per_row": GRID,
        "tiles_per_atlas": per_atlas,
        "atlases": atlases,
        "names": names,
        "codepoints": [n.removesuffix(".png").upper().split("-") for n in names],
        "split": [split_of(n) for n in names],
    }
    (out / "index.json").write_text(json.dumps(index, indent=0, sort_keys=True) + "\n")
    (out / "LICENSE-twemoji.txt").write_text(LICENSE)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="an extracted img/twitter/64 folder (skips npm pack)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = args.src or fetch(Path(tmp))
        index = build(src, args.out)
    counts = {s: index["split"].count(s) for s in ("train", "val", "test")}
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.iterdir())}
    print(f"{len(index['names'])} images -> {args.out}: {counts}; bytes {sizes}")


if __name__ == "__main__":
    main()
