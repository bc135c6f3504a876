"""Did colorization teach the network anything that segments? A control for the seed's question (issue 20).

    PYTHONPATH=src python bench/segments_features.py [--split val|test] [--run RUN] [--random-seeds 0 1 2] \
        [--corpus data-cache/photos] [--downloads data-cache/downloads] [--masks DIR] [--no-composites] \
        [--json out.json]

The shipped model's segments are its Felzenszwalb regions of the grey image (`--superpixels`) joined by the
network. This script joins the same regions, per photo into the prior's own number of segments n, by
k-means (area-weighted, `segeval.group_regions`) on

- ``L``: each region's mean lightness (the bench's ``superpixel_kmeans_L``);
- ``trained``: each region's mean trunk feature (`LatentColorNet.semantic`, the features the segment
  head and the colour law read, bilinearly upsampled to the work grid; standardised per dimension);
- ``random sN``: the same with the trunk's weights re-drawn by PyTorch's default initialisation under
  seed N -- the architecture without the colorization training (the usual control for self-supervised
  features);
- ``prior``: the model's own argmax P(z|x), for comparison.

It prints each method's mean ARI against the hand-drawn regions and the composites (`segments_photos.py`'s
ground truth) and paired 95 % bootstrap intervals of ``trained`` minus the others (a composite drawn with
its background photo). The model itself is not changed.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentvar.colorize.bootstrap import interval
from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.composites import ground_truth_sets
from latentvar.colorize.segeval import SPLIT_MASKS, group_regions
from latentvar.colorize.segscore import adjusted_rand
from latentvar.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
MASKS = SPLIT_MASKS


def trunk_features(net):
    """The work-grid L (h, w) -> the trunk's features there, (h, w, c)."""

    @torch.no_grad()
    def features(L: torch.Tensor) -> np.ndarray:
        f, _ = net.semantic(L[None])
        return (
            F.interpolate(f, size=L.shape, mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
        )

    return features


def redrawn(colorizer: Colorizer, seed: int):
    """A copy of the model's network with its trunk's weights drawn afresh (seeded): the untrained control."""
    net = copy.deepcopy(colorizer.model.net)
    torch.manual_seed(seed)
    for module in net.trunk.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="Run folder or shipped model (default: the photo model).")
    ap.add_argument("--split", choices=sorted(MASKS), default="val")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data-cache/photos")
    ap.add_argument("--downloads", type=Path, default=ROOT / "data-cache/downloads")
    ap.add_argument("--masks", type=Path, default=None, help="Mask folder (default: the split's own).")
    ap.add_argument("--no-composites", action="store_true", help="Score the hand-drawn masks only.")
    ap.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--json", type=Path, default=None, help="Write every photo's ARI per method here.")
    args = ap.parse_args()
    torch.set_num_threads(2)

    colorizer = Colorizer.load(args.run)
    if colorizer.kind != "latent" or not getattr(colorizer.model.net, "superpixels", 0.0):
        raise SystemExit(
            "error: run: needs a latent model whose prior is pooled over regions (--superpixels)"
        )
    try:
        downloads = None if args.no_composites else args.downloads
        sets = ground_truth_sets(args.corpus, args.masks or MASKS[args.split], args.split, downloads)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    methods = {"L": None, "trained": trunk_features(colorizer.model.net)}
    methods |= {f"random s{s}": trunk_features(redrawn(colorizer, s)) for s in args.random_seeds}
    t0 = time.perf_counter()
    rows = []
    for name, items in sets.items():
        for image, rgb, labels in items:
            prior = colorizer.segment(rgb)
            n = len(np.unique(prior))
            row = {"set": name, "image": image, "n": n, "prior": adjusted_rand(prior, labels)}
            for method, features in methods.items():
                row[method] = adjusted_rand(group_regions(colorizer, rgb, n, features), labels)
            rows.append(row)
    seconds = time.perf_counter() - t0
    names = ["prior", *methods]
    print(f"Regions of the model ({args.run or 'photo (shipped)'}) joined into its n segments by k-means on "
          f"... ({args.split} split); mean ARI:")  # fmt: skip
    print(f"{'method':<14}" + "".join(f"{s:>12}" for s in [*sets, "both"]))
    for m in names:
        cells = [np.mean([r[m] for r in rows if r["set"] == s]) for s in sets] + [
            np.mean([r[m] for r in rows])
        ]
        print(f"{m:<14}" + "".join(f"{v:>12.3f}" for v in cells))
    groups = [r["image"].split("@")[-1] for r in rows]
    print("\ntrained minus each (paired, 95 % over photos, both sets; composites with their background):")
    for m in names:
        if m != "trained":
            d = interval([r["trained"] for r in rows], minus=([r[m] for r in rows], None), groups=groups)
            print(f"  - {m:<12}{d['value']:+.3f}  [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
    print(f"\n({seconds:.0f} s for {len(rows)} photos)")
    if args.json:
        atomic_write_json(args.json, {"split": args.split, "model": args.run or "photo", "rows": rows})


if __name__ == "__main__":
    main()
