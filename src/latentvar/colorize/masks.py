"""Ground-truth regions of photos, drawn by hand as polygons: one JSON file per photo.

The format (``"format": "latentvar-masks/1"``)::

    {"format": "latentvar-masks/1",
     "image": "<file name of the photo, e.g. a corpus id + .jpg>",
     "sha256": "<hex digest of that file's bytes>",   # optional; a mismatch is reported, not fatal
     "width": W, "height": H,                          # the photo's size in pixels (must match)
     "regions": [{"label": "sky", "polygons": [[[x, y], [x, y], [x, y], ...], ...]}, ...],
     "notes": "..."}                                    # optional: how it was drawn and checked

Pixel (col, row) covers [col, col + 1) × [row, row + 1); it belongs to a polygon when its centre
(col + 0.5, row + 0.5) lies inside (matplotlib's point-in-polygon test), so the square with
corners (1, 1) and (4, 4) holds exactly the 3 × 3 pixels 1..3 (a centre exactly on an edge may fall
either way). Regions are painted in order, a later one
over an earlier one (draw the sky, then the tower in front of it); a region's polygons are united. Pixels
that no region covers are unlabelled: they count in no score (`segscore`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "latentvar-masks/1"


@dataclass(frozen=True)
class RegionMasks:
    """One photo's ground truth: ``labels()`` gives the (h, w) int32 map (region index, -1 unlabelled)."""

    image: str
    width: int
    height: int
    regions: tuple[tuple[str, tuple[np.ndarray, ...]], ...]  # (label, polygons (n, 2) float64 in x, y)
    sha256: str | None = None
    path: str | None = None

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.regions]

    def labels(self) -> np.ndarray:
        return rasterise([polys for _, polys in self.regions], self.height, self.width)


def polygon_mask(polygon, height: int, width: int) -> np.ndarray:
    """(h, w) bool: the pixels whose centres lie inside ``polygon`` ((n, 2) x, y in pixel units)."""
    from matplotlib.path import Path as MplPath

    poly = np.asarray(polygon, np.float64)
    out = np.zeros((height, width), bool)
    x0, y0 = np.clip(np.floor(poly.min(0) - 0.5).astype(int), 0, [width, height])
    x1, y1 = np.clip(np.ceil(poly.max(0) + 0.5).astype(int), 0, [width, height])
    if x1 <= x0 or y1 <= y0:
        return out
    ys, xs = np.mgrid[y0:y1, x0:x1]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
    out[y0:y1, x0:x1] = MplPath(poly).contains_points(centres, radius=0).reshape(ys.shape)
    return out


def rasterise(regions, height: int, width: int) -> np.ndarray:
    """Regions (each a list of polygons), painted in order -> (h, w) int32 region index, -1 where none."""
    out = np.full((height, width), -1, np.int32)
    for index, polygons in enumerate(regions):
        for polygon in polygons:
            out[polygon_mask(polygon, height, width)] = index
    return out


def _field(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _point_list(value, where: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) < 3:
        raise ValueError(f"{where}: expected a list of at least 3 [x, y] points, got {_short(value)}")
    for j, point in enumerate(value):
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in point)
            or not all(np.isfinite(point))
        ):
            raise ValueError(
                f"{where}[{j}]: expected a point [x, y] of two finite numbers, got {_short(point)}"
            )
    return np.asarray(value, np.float64)


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_masks(data, where: str = "") -> RegionMasks:
    """A decoded mask JSON -> RegionMasks; ValueError naming the field (``regions[2].polygons[0]``) and
    what it expected on anything malformed."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'masks'}: expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ValueError(f"{_field(where, 'format')}: expected {FORMAT!r}, got {_short(data.get('format'))}")
    image = data.get("image")
    if not isinstance(image, str) or not image or "/" in image or "\\" in image:
        raise ValueError(f"{_field(where, 'image')}: expected the photo's file name, got {_short(image)}")
    for key in ("width", "height"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{_field(where, key)}: expected a positive integer, got {_short(value)}")
    sha = data.get("sha256")
    if sha is not None and (
        not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha)
    ):
        raise ValueError(f"{_field(where, 'sha256')}: expected 64 lower-case hex digits, got {_short(sha)}")
    regions = data.get("regions")
    if not isinstance(regions, list) or not regions:
        raise ValueError(
            f"{_field(where, 'regions')}: expected a non-empty list of regions, got {_short(regions)}"
        )
    parsed = []
    for i, region in enumerate(regions):
        at = _field(where, f"regions[{i}]")
        if not isinstance(region, dict):
            raise ValueError(f"{at}: expected an object with label and polygons, got {_short(region)}")
        label = region.get("label")
        if not isinstance(label, str) or not label:
            raise ValueError(f"{at}.label: expected a non-empty name, got {_short(label)}")
        polygons = region.get("polygons")
        if not isinstance(polygons, list) or not polygons:
            raise ValueError(f"{at}.polygons: expected a non-empty list of polygons, got {_short(polygons)}")
        parsed.append((label, tuple(_point_list(p, f"{at}.polygons[{j}]") for j, p in enumerate(polygons))))
    return RegionMasks(image, data["width"], data["height"], tuple(parsed), sha)


def read_masks(path: str | os.PathLike) -> RegionMasks:
    """One mask JSON file (errors name the file and the field)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"masks: cannot read {path} as JSON ({err})") from None
    parsed = parse_masks(data, where=path.name)
    return RegionMasks(parsed.image, parsed.width, parsed.height, parsed.regions, parsed.sha256, str(path))


def read_mask_folder(directory: str | os.PathLike) -> list[RegionMasks]:
    """Every ``*.json`` in ``directory`` (sorted by name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"masks: expected a folder of mask JSON files, got {str(directory)!r}")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ValueError(f"masks: no *.json mask files in {directory}")
    return [read_masks(f) for f in files]


def read_split_masks(
    directory: str | os.PathLike, corpus: str | os.PathLike, split: str
) -> list[RegionMasks]:
    """Every mask of ``directory`` (`read_mask_folder`), each checked to name a photo of ``split`` in the
    photo corpus ``corpus`` (its manifest's ``split``): model selection scores on val masks only and the
    final table on test masks only, so a mask of another split -- or of no corpus photo -- is an error
    naming its file, never skipped."""
    from latentvar.colorize.photos import SPLITS, read_manifest

    if split not in {s for s, _ in SPLITS}:
        raise ValueError(f"split: expected one of train, val, test, got {split!r}")
    manifest = Path(corpus) / "manifest.json"
    if not manifest.is_file():
        raise ValueError(f"masks: no manifest.json in {corpus} (expected the photo corpus the masks name)")
    split_by_image = {f"{p['id']}.jpg": p["split"] for p in read_manifest(manifest)["photos"]}
    masks = read_mask_folder(directory)
    for m in masks:
        found = split_by_image.get(m.image)
        if found is None:
            raise ValueError(f"masks: {m.path} names {m.image!r}, which is not a photo of {manifest}")
        if found != split:
            raise ValueError(
                f"masks: {m.path} names {m.image!r}, a {found}-split photo; expected only {split}-split "
                "photos (never mix splits: val masks choose models, test masks report them)"
            )
    return masks


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find_image(masks: RegionMasks, data: str | os.PathLike) -> Path:
    """The photo a mask file names, in ``data``: a photo corpus (``images/<image>``) or a plain folder."""
    data = Path(data)
    for candidate in (data / "images" / masks.image, data / masks.image):
        if candidate.is_file():
            return candidate
    raise ValueError(f"masks: {masks.path or masks.image} names {masks.image!r}, which is not in {data}")


def load_ground_truth(
    masks: RegionMasks, image_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(RGB uint8 (h, w, 3), labels (h, w) int32, sha256 matches) for one mask file and its photo; the
    photo's size must be the one the polygons were drawn on."""
    from latentvar.colorize.images import read_image_rgb_uint8

    rgb = read_image_rgb_uint8(image_path)[..., :3]
    if rgb.shape[:2] != (masks.height, masks.width):
        raise ValueError(
            f"masks: {masks.path or masks.image} was drawn on {masks.width} x {masks.height} px, but "
            f"{image_path} is {rgb.shape[1]} x {rgb.shape[0]}"
        )
    same = masks.sha256 is None or file_sha256(image_path) == masks.sha256
    return np.ascontiguousarray(rgb), masks.labels(), same
