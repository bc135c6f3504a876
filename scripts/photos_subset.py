"""An earlier build of the photo corpus, cut out of the current one: the photos of the named packages only,
with their ids, splits and files unchanged (hard links where the file system allows, else copies).

    python scripts/photos_subset.py data-cache/photos data-cache/photos622 --build 622

``--build 622``: the eight packages of the 622-photo build the shipped `photo` model was first trained on
(before issue 20's sources; docs/colorize.md, "The corpus"). Every photo keeps its id and split, so the
subset's train / val / test are the earlier build's (checked on 2026-12-06: the 985-photo build cut to
these packages is exactly the 622-photo build's ids, 500 / 55 / 67). ``--packages a,b`` names others.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections import Counter
from pathlib import Path

from latentvar.colorize.photos import read_manifest, write_manifest

BUILDS = {
    "622": (
        "gcompris-qt-data", "tuxpaint-stamps-default", "scratch", "lxqt-themes",
        "plasma-workspace-wallpapers", "palapeli-data", "scikit-image", "matplotlib",
    ),
}  # fmt: skip


def subset(src: Path, out: Path, packages: tuple[str, ...]) -> dict:
    """Write ``out``/manifest.json and ``out``/images/ for the photos of ``packages``; returns the summary."""
    manifest = read_manifest(src / "manifest.json")
    photos = [p for p in manifest["photos"] if p["package"] in packages]
    missing = set(packages) - {p["package"] for p in photos}
    if missing:
        raise SystemExit(f"--packages: no photo of {sorted(missing)} in {src}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    for p in photos:
        name = f"{p['id']}.jpg"
        target = out / "images" / name
        if not target.exists():
            try:
                os.link(src / "images" / name, target)
            except OSError:
                shutil.copyfile(src / "images" / name, target)
    if (src / "licences").is_dir():
        shutil.copytree(src / "licences", out / "licences", dirs_exist_ok=True)
    summary = {
        "subset_of": str(src),
        "packages": sorted(packages),
        "num_photos": len(photos),
        "splits": dict(Counter(p["split"] for p in photos)),
    }
    write_manifest(out / "manifest.json", photos, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a corpus written by `latentvar colorize prepare photos`")
    parser.add_argument("out", type=Path)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--build", choices=sorted(BUILDS))
    group.add_argument("--packages", help="comma-separated package names")
    args = parser.parse_args()
    packages = (
        BUILDS[args.build] if args.build else tuple(s.strip() for s in args.packages.split(",") if s.strip())
    )
    print(subset(args.src, args.out, packages))


if __name__ == "__main__":
    main()
