"""The learned segment prior's ablation (issue 20): one row per trained run -- its val / train NLL and val
AuC (from the run's own val checks, the weights `Colorizer.load` takes), and its segments on the test
split's hand-drawn regions (`colorize.segeval`, prior and posterior: ARI, boundary F, connected
components per used segment, segments used per photo) -- so each training term's effect is one row apart.

    PYTHONPATH=src python bench/colorize_prior_ablation.py NAME=RUN [NAME=RUN ...] \
        [--corpus data-cache/photos] [--masks src/latentvar/data/photo_masks] [--json out.json]

A RUN is a run folder or a shipped model's name ('photo'). The runs are trained by scripts/colorize_ablation.sh.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.masks import find_image, load_ground_truth, read_mask_folder
from latentvar.colorize.photos import read_manifest
from latentvar.colorize.segeval import score_set
from latentvar.colorize.shipped import resolve_run
from latentvar.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def kept_check(run: Path) -> dict:
    """The val check of the weights `Colorizer.load` takes (best.* when the run has them)."""
    meta = json.loads(
        (run / ("best.json" if (run / "best.json").exists() else "checkpoint.json")).read_text()
    )
    check = meta["validation"][-1] if meta.get("validation") else {}
    config = meta["config"]
    return {"step": meta["step"], "val_nll": check.get("val"), "train_nll": check.get("train"),
            "val_auc": check.get("val_auc"), "prior": config.get("prior", "lightness"),
            "smooth_steps": config.get("smooth_steps"), "balance": config.get("balance"),
            "invariance": config.get("invariance"), "confidence": config.get("confidence"),
            "colour_law": config.get("colour_law", "linear")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="NAME=RUN pairs")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data-cache/photos")
    ap.add_argument("--masks", type=Path, default=ROOT / "src/latentvar/data/photo_masks")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    test = {f"{p['id']}.jpg" for p in read_manifest(args.corpus / "manifest.json")["photos"]
            if p["split"] == "test"}  # fmt: skip
    items = []
    for m in read_mask_folder(args.masks):
        if m.image in test:
            rgb, labels, _ = load_ground_truth(m, find_image(m, args.corpus))
            items.append((Path(m.image).stem, rgb, labels))
    rows = []
    t0 = time.perf_counter()
    for pair in args.runs:
        name, _, run = pair.partition("=")
        path = resolve_run(run)
        seg = score_set(Colorizer.load(run), items, baselines=False)["mean"]
        rows.append({"name": name, "run": run, **kept_check(path), "segments": seg})
    head = (f"{'run':<22}{'step':>6}{'val NLL':>9}{'train':>8}{'val AuC':>9}{'ARI prior':>11}{'ARI post':>10}"
            f"{'bF prior':>10}{'comp/seg':>10}{'segs':>6}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for r in rows:
        p, q = r["segments"]["prior"], r["segments"]["posterior"]
        print(f"{r['name']:<22}{r['step']:>6}{r['val_nll']:>9.3f}{r['train_nll']:>8.3f}{r['val_auc']:>9.4f}"
              f"{p['ari']:>11.3f}{q['ari']:>10.3f}{p['boundary_f']:>10.3f}{p['components_per_segment']:>10.1f}"
              f"{p['segments_used']:>6.1f}")  # fmt: skip
    print(f"({len(items)} test photos with hand-drawn regions; {time.perf_counter() - t0:.0f} s)")
    if args.json:
        atomic_write_json(args.json, {"rows": rows, "num_images": len(items)})


if __name__ == "__main__":
    main()
