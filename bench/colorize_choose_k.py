"""Choose among photo runs on val (issue 20: "K chosen on val by a rule a user would accept"): each run's
kept weights' val NLL and AuC (on --corpus's val split, so that runs trained on different builds of the
corpus compare; the kept step from the run's own checks) and its prior's segments on the val split's
hand-drawn regions (`photo_masks_val`: ARI, boundary F, components per used segment), the grey-only
baselines beside them, and the run `segeval.choose_run` picks: the lowest val NLL among the runs with at
most 25 components per used segment and a val ARI within 0.04 of the best such run's. Nothing here reads
the test split.

    PYTHONPATH=src python bench/colorize_choose_k.py K8=runs/k8 K16=runs/k16 K24=runs/k24 \
        [--corpus data-cache/photos] [--json choice.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.composites import ground_truth_sets
from latentvar.colorize.segeval import (
    MAX_ARI_DROP,
    MAX_COMPONENTS,
    VAL_MASKS,
    choose_run,
    corpus_validation,
    score_set,
)
from latentvar.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def kept_step(colorizer: Colorizer) -> int:
    """The training step of the weights `Colorizer.load` took (a run's best-on-val ones when it kept them)."""
    meta = colorizer.meta
    return (meta.get("best") or {"step": meta["step"]})["step"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="label=run folder")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data-cache/photos")
    ap.add_argument("--masks", type=Path, default=VAL_MASKS)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    items = ground_truth_sets(args.corpus, args.masks, "val", None)["hand"]
    rows = []
    for label, run in (r.split("=", 1) for r in args.runs):
        colorizer = Colorizer.load(run)
        mean = score_set(colorizer, items)["mean"]  # the baselines get each photo's n from this run's prior
        base = max((m for m in mean if m.endswith("_L")), key=lambda m: mean[m]["ari"])
        k = int(colorizer.model.config["segments"])
        rows.append(
            {"label": label, "run": run, "segments": k, "step": kept_step(colorizer),
             **corpus_validation(colorizer, args.corpus), **mean["prior"],
             "best_baseline": base, "best_baseline_ari": mean[base]["ari"]}
        )  # fmt: skip
    chosen = choose_run(rows)
    head = (
        f"{'run':<12}{'K':>4}{'step':>6}{'val NLL':>9}{'val AuC':>9}{'ARI':>7}{'bnd F':>7}{'comp/seg':>9}"
        f"{'n':>5}{'click':>7}   best grey-only baseline at n (ARI)"
    )
    print(
        f"val split, {len(items)} hand-drawn photos; rule: lowest val NLL at <= {MAX_COMPONENTS:.0f} "
        f"comp/seg, ARI within {MAX_ARI_DROP} of the best\n"
    )
    print(head + "\n" + "-" * len(head))
    for r in rows:
        mark = "  <- chosen" if r is chosen else ""
        print(
            f"{r['label']:<12}{r['segments']:>4}{r['step']:>6}{r['val_nll']:>9.4f}{r['val_auc']:>9.4f}"
            f"{r['ari']:>7.3f}{r['boundary_f']:>7.3f}{r['components_per_segment']:>9.1f}{r['segments_used']:>5.1f}"
            f"{r['click_hit']:>7.3f}   {r['best_baseline']} ({r['best_baseline_ari']:.3f}){mark}"
        )
    print(
        "(click: per photo, the share of its regions >= 5 % of it where `serve`'s click recolours >= 80 % of\n"
        " the region and <= 10 % of the rest, averaged over the photos; `segscore.click_regions`. Reported,\n"
        " not part of the rule.)"
    )
    verdict = "above" if chosen["ari"] > chosen["best_baseline_ari"] else "not above"
    print(
        f"\nchosen: {chosen['label']}; its val ARI {chosen['ari']:.3f} is {verdict} the best grey-only "
        f"baseline's at its n ({chosen['best_baseline_ari']:.3f})"
    )
    if args.json:
        atomic_write_json(args.json, {"rows": rows, "chosen": chosen["label"]})


if __name__ == "__main__":
    main()
