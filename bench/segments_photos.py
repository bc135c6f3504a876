"""Segments against ground truth on the photo corpus's test or val split (issue 20): mean ARI, boundary F
and connected components per used segment, for the prior P(z|x) and the posterior P(z|x,y) of a model and
for k-means, SLIC and Felzenszwalb on L given the same number of segments per photo.

    PYTHONPATH=src python bench/segments_photos.py [--split test|val] [--run RUN] \
        [--corpus data-cache/photos] [--masks FOLDER] [--downloads data-cache/downloads] [--json out.json]

``--split test`` (the default) scores the reported table on ``src/latentvar/data/photo_masks``; ``--split
val`` scores on ``src/latentvar/data/photo_masks_val`` and val-split stamps, for choosing models (K, ...)
without looking at test. A mask folder holding a photo of another split is an error naming the file.

Two ground truths, each printed as its own table (then both together):
- ``hand``: the split's full-frame photos whose regions were drawn by hand as polygons (``--masks``,
  `colorize.masks`), at the corpus's resolution (longer side <= 512 px);
- ``composites``: every Tux Paint stamp of the split, its alpha as the object mask, pasted over one of those
  photos (`colorize.composites`; the .deb is fetched into ``--downloads`` once).
``--run`` is a run folder or a shipped model's name; default the shipped photo model (`Colorizer.load()`).
On the test split it prints each table again without the photo that `scripts/colorize_ship.py`'s click
check looks at (`segeval.CLICK_CHECK`; a composite counts as that photo when pasted on it), since that check
can veto a model. Under each table, the prior's mean ARI minus each other method's with a 95 % paired
bootstrap interval over the photos (`colorize.bootstrap.segment_intervals`, 2,000 draws). Scores:
`colorize.segscore` (ARI over labelled pixels; boundary F with the BSDS tolerance
0.0075 x the diagonal; components 8-connected, over the whole photo). Baselines: `colorize.segeval`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from latentvar.colorize.bootstrap import format_segment_intervals, segment_intervals
from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.composites import ground_truth_sets
from latentvar.colorize.segeval import CLICK_CHECK, SPLIT_MASKS, format_table, mean_scores, score_set
from latentvar.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
MASKS = SPLIT_MASKS


def per_image_lines(result: dict) -> str:
    """One line per photo: its name, n (the prior's segments) and each method's ARI / components."""
    methods = list(result["mean"])
    lines = [f"{'photo':<60}{'n':>4}" + "".join(f"{m:>16}" for m in methods) + "   (ARI / comp. per seg.)"]
    for p in result["per_image"]:
        cells = "".join(
            f"{p['scores'][m]['ari']:>9.3f}/{p['scores'][m]['components_per_segment']:<6.0f}" for m in methods
        )
        lines.append(f"{p['image'][-60:]:<60}{p['segments_target']:>4}{cells}")
    return "\n".join(lines)


def table(per_image: list[dict], title: str) -> str:
    """The means of ``per_image`` as a table, then the prior's ARI minus each method's with its interval."""
    means = format_table({"mean": mean_scores(per_image), "num_images": len(per_image)}, title)
    return means + "\n" + format_segment_intervals(segment_intervals(per_image))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="Run folder or shipped model (default: the photo model).")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data-cache/photos")
    ap.add_argument(
        "--split",
        choices=sorted(MASKS),
        default="test",
        help="test: the reported table; val: model selection (its own masks and stamps).",
    )
    ap.add_argument("--masks", type=Path, default=None, help="Mask folder (default: the split's own).")
    ap.add_argument("--downloads", type=Path, default=ROOT / "data-cache/downloads")
    ap.add_argument("--no-composites", action="store_true", help="Score the hand-drawn masks only.")
    ap.add_argument("--json", type=Path, default=None, help="Write every photo's scores here.")
    ap.add_argument("--per-image", action="store_true", help="Also print each photo's ARI per method.")
    args = ap.parse_args()

    downloads = None if args.no_composites else args.downloads
    try:
        sets = ground_truth_sets(args.corpus, args.masks or MASKS[args.split], args.split, downloads)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    colorizer = Colorizer.load(args.run)
    t0 = time.perf_counter()
    results = {name: score_set(colorizer, items) for name, items in sets.items()}
    seconds = time.perf_counter() - t0
    model = args.run or "photo (shipped)"
    for name, result in results.items():
        print(table(result["per_image"], f"\n{name} ground truth ({args.split} split), model {model}:"))
        if args.per_image:
            print(per_image_lines(result))
    if len(results) > 1:
        both = [p for r in results.values() for p in r["per_image"]]
        print(table(both, "\nboth together:"))
    if args.split == "test":  # the ship script's click check looks at this photo: the means without it too
        for name, result in results.items():
            rest = [p for p in result["per_image"] if not p["image"].endswith(CLICK_CHECK[0])]
            if 0 < len(rest) < len(result["per_image"]):
                title = f"\n{name} ground truth without {CLICK_CHECK[0]} (the ship check's photo):"
                print(table(rest, title))
    print(f"\n({seconds:.0f} s for {sum(len(s) for s in sets.values())} photos)")
    if args.json:
        atomic_write_json(args.json, {"model": model, "split": args.split, **results})


if __name__ == "__main__":
    main()
