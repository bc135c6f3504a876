"""Average the learned prior over several pooling scales? (issue 20, a measured dead end, 2026-12-06.)

P(z|x) = the mean over scales S of softmax(the prior's logits averaged over the grey image's Felzenszwalb
regions of scale S; S = 0: not pooled). Still a per-pixel Categorical that depends on x alone, so the
marginal, the posterior and the samples stay exact; each segment's colour law reads the averaged prior.
For each set of scales: val NLL and AuC (--corpus's val split, the model's own decoding), the prior's
segments on the val split's hand-drawn regions (ARI, boundary F, components per used segment, click hit)
and the browser test's sky click (`segeval.click_check`). Nothing here reads the test split. The mixing
is set on the loaded model's instance for this script only; no model option offers it.

    PYTHONPATH=src python bench/colorize_pool_mix.py --run runs/ship/photo-latent-k24long \
        --corpus data-cache/photos622 450 0,300,600 300,600 0,450
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path

import torch

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.composites import ground_truth_sets
from latentvar.colorize.model import lightness_input, upsample
from latentvar.colorize.prior import superpixel_pool
from latentvar.colorize.segeval import VAL_MASKS, click_check, corpus_validation, score_set

ROOT = Path(__file__).resolve().parents[1]


def mix_scales(colorizer: Colorizer, scales: list[float]) -> None:
    """From now on ``colorizer``'s prior is the mean over ``scales`` of its pooled softmax (0: unpooled)."""
    net = colorizer.model.net

    def prior_logits(self, L):
        x = lightness_input(L)
        features, semantic, coarse = self.coarse_logits(L)
        logits = self.refine(upsample(coarse, x), x)
        pooled = [superpixel_pool(logits, L, s) if s else logits for s in scales]
        probs = torch.stack([torch.softmax(p, 1) for p in pooled]).mean(0)
        return probs.clamp_min(1e-30).log(), features, semantic

    net.prior_logits = types.MethodType(prior_logits, net)
    colorizer._last = (None, None)  # a cached P(z|x) of the unmixed prior must not be reused


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scales", nargs="+", help="comma-separated Felzenszwalb scales, e.g. 0,300,600")
    ap.add_argument("--run", default="photo", help="a run folder or shipped model with a learned prior")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data-cache/photos")
    ap.add_argument("--masks", type=Path, default=VAL_MASKS)
    args = ap.parse_args()
    items = ground_truth_sets(args.corpus, args.masks, "val", None)["hand"]
    print(
        f"{'scales':<18}{'val NLL':>9}{'val AuC':>9}{'ARI':>7}{'bnd F':>7}{'comp/seg':>9}{'click':>7}   sky click"
    )
    for spec in args.scales:
        colorizer = Colorizer.load(args.run)
        mix_scales(colorizer, [float(s) for s in spec.split(",")])
        prior = score_set(colorizer, items, baselines=False)["mean"]["prior"]
        val = corpus_validation(colorizer, args.corpus)
        sky = click_check(colorizer)
        print(
            f"{spec:<18}{val['val_nll']:>9.4f}{val['val_auc']:>9.4f}{prior['ari']:>7.3f}"
            f"{prior['boundary_f']:>7.3f}{prior['components_per_segment']:>9.1f}{prior['click_hit']:>7.3f}"
            f"   {sky['click_inside']:.1%} / {sky['click_outside']:.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
