"""Cut-and-paste ground truth: photographed Tux Paint stamps pasted over hand-masked full-frame photos.

Every Tux Paint stamp in one split of a photo corpus (*test* for the reported table, *val* for model
selection) is a photograph cut out by its author, and the stamp's PNG keeps the cut-out as its alpha
channel -- an object mask drawn by hand. The corpus itself
stores the stamps composited on white (`photos._open_rgb`), so the alpha is read again from the
package: ``tuxpaint-stamps-default`` at the version pinned in `photos.SOURCES`, fetched into a download
folder with ``apt-get download`` (`packages._fetch`, reused when present) and unpacked with ``dpkg -x``.

`build_composites` is deterministic (no committed images): stamp i (sorted by id) goes onto background
i mod B (the hand-masked photos of `masks` in the same split, sorted by name), cropped to its opaque
box, resized (premultiplied alpha, Lanczos) so its longer side is `STAMP_SHARE` of the background's shorter
side, and placed at a position drawn from a generator seeded by the stamp id's sha256. Labels: the
background's regions, then the object over them where alpha >= 0.9; pixels of alpha in (0.1, 0.9) --
the stamp's soft edge, neither object nor background -- are unlabelled (-1).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

STAMP_SHARE = 0.5
TUXPAINT = "tuxpaint-stamps-default"


def _tuxpaint_version() -> str:
    from latentvar.colorize.photos import SOURCES

    return next(s.version for s in SOURCES if s.name == TUXPAINT)


def paste(background: np.ndarray, labels: np.ndarray, stamp_rgba: np.ndarray, top: int, left: int):
    """Alpha-composite ``stamp_rgba`` (h', w', 4) uint8 onto ``background`` (h, w, 3) uint8 at (top, left);
    -> (RGB uint8, labels int32 with the object as the next free label, ``labels.max() + 1``)."""
    h, w = stamp_rgba.shape[:2]
    if top < 0 or left < 0 or top + h > background.shape[0] or left + w > background.shape[1]:
        raise ValueError(f"stamp_rgba: a {w} x {h} stamp at ({left}, {top}) does not fit the background")
    rgb = background.astype(np.float64)
    a = stamp_rgba[..., 3:].astype(np.float64) / 255.0
    window = rgb[top : top + h, left : left + w]
    rgb[top : top + h, left : left + w] = window * (1 - a) + stamp_rgba[..., :3] * a
    out = labels.copy()
    obj = int(labels.max()) + 1
    view = out[top : top + h, left : left + w]
    view[a[..., 0] >= 0.9] = obj
    view[(a[..., 0] > 0.1) & (a[..., 0] < 0.9)] = -1
    return np.round(rgb).astype(np.uint8), out


def _resized_stamp(rgba: np.ndarray, longer: int) -> np.ndarray:
    """Crop to the opaque box, resize (premultiplied alpha) so the longer side is ``longer`` px."""
    from PIL import Image

    ys, xs = np.nonzero(rgba[..., 3] > 8)
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = longer / max(rgba.shape[:2])
    size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
    im = Image.fromarray(np.ascontiguousarray(rgba), "RGBA").convert("RGBa")
    return np.asarray(im.resize(size, Image.Resampling.LANCZOS).convert("RGBA"))


def build_composites(
    corpus: str | os.PathLike, masks, downloads: str | os.PathLike, split: str = "test"
) -> list[tuple]:
    """-> [(name "<stamp id>@<background stem>", RGB uint8 (h, w, 3), labels (h, w) int32)], one per
    ``split`` stamp of ``corpus``; ``masks``: `masks.RegionMasks` of corpus photos (those of ``split``
    are the backgrounds; stamps and backgrounds never cross splits)."""
    from PIL import Image

    from latentvar.colorize.images import to_rgba
    from latentvar.colorize.masks import find_image, load_ground_truth
    from latentvar.colorize.packages import _fetch, _members
    from latentvar.colorize.photos import read_manifest

    corpus = Path(corpus)
    photos = read_manifest(corpus / "manifest.json")["photos"]
    if split not in {"train", "val", "test"}:
        raise ValueError(f"split: expected one of train, val, test, got {split!r}")
    chosen = {f"{p['id']}.jpg" for p in photos if p["split"] == split}
    stamps = sorted((p for p in photos if p["split"] == split and p["package"] == TUXPAINT),
                    key=lambda p: p["id"])  # fmt: skip
    backgrounds = sorted((m for m in masks if m.image in chosen), key=lambda m: m.image)
    if not stamps or not backgrounds:
        raise ValueError(
            f"masks: composites need {split}-split Tux Paint stamps and hand-masked {split}-split photos of "
            f"{corpus}, found {len(stamps)} stamps and {len(backgrounds)} masked photos"
        )
    grounds = [load_ground_truth(m, find_image(m, corpus))[:2] for m in backgrounds]
    deb = _fetch("deb", TUXPAINT, _tuxpaint_version(), Path(downloads))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        files = dict(_members("deb", deb, Path(tmp)))
        for i, stamp in enumerate(stamps):
            rgba = to_rgba(Image.open(io.BytesIO(files[stamp["source"]]())))
            bg, labels = grounds[i % len(grounds)]
            obj = _resized_stamp(rgba, round(STAMP_SHARE * min(bg.shape[:2])))
            rng = np.random.default_rng(int(hashlib.sha256(stamp["id"].encode()).hexdigest()[:8], 16))
            top = int(rng.integers(0, bg.shape[0] - obj.shape[0] + 1))
            left = int(rng.integers(0, bg.shape[1] - obj.shape[1] + 1))
            rgb, lab = paste(bg, labels, obj, top, left)
            out.append((f"{stamp['id']}@{Path(backgrounds[i % len(grounds)].image).stem}", rgb, lab))
    return out


def ground_truth_sets(
    corpus: str | os.PathLike, masks_dir: str | os.PathLike, split: str, downloads: str | os.PathLike | None,
) -> dict[str, list[tuple]]:  # fmt: skip
    """The segment benches' ground truth: {"hand": [(photo stem, RGB, labels)] from the ``split`` masks in
    ``masks_dir``, "composites": `build_composites` over them} (``downloads`` None: the hand masks only). A
    photo that differs from the file its mask was drawn on (same size) is scored, with a note on stderr."""
    import sys

    from latentvar.colorize.masks import find_image, load_ground_truth, read_split_masks

    masks = read_split_masks(masks_dir, corpus, split)
    hand = []
    for m in masks:
        rgb, labels, same = load_ground_truth(m, find_image(m, corpus))
        if not same:
            print(
                f"note: {m.image} differs from the file its mask was drawn on (same size; scored)",
                file=sys.stderr,
            )
        hand.append((Path(m.image).stem, rgb, labels))
    sets = {"hand": hand}
    if downloads is not None:
        sets["composites"] = build_composites(corpus, masks, downloads, split)
    return sets
