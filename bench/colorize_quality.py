"""Colorization quality at equal budget: NLL, AuC, PSNR, colourfulness for latent / per-pixel / regression /
grey on the Twemoji test split, and the prior segmentation's mIoU against k-means on grey on OpenMoji labels.

    PYTHONPATH=src python bench/colorize_quality.py --runs runs/demo [--openmoji runs/openmoji]

``--runs`` is a directory written by `latentvar colorize demo` (latent/, per-pixel/, regression/, all
trained with the same steps and batch size); without it the three models are trained here first
(``--steps``, ``--batch``). ``--openmoji`` is the output of `latentvar colorize prepare openmoji`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.evaluate import evaluate, grey_baseline, load_labels
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.train import TrainConfig, load_data, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_quality"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--openmoji", type=Path, default=None)
    parser.add_argument(
        "--openmoji-limit", type=int, default=None, help="evaluate on the first N images only"
    )
    args = parser.parse_args()
    runs = args.runs
    if runs is None:
        runs = args.out
        for kind in ("latent", "per-pixel", "regression"):
            train(TrainConfig(model=kind, steps=args.steps, batch_size=args.batch, out=str(runs / kind)))
    models = {kind: Colorizer.load(runs / kind) for kind in ("latent", "per-pixel", "regression")}
    models["grey"] = grey_baseline()
    budget = models["latent"].meta["config"]
    test = load_data("twemoji", 32, "test", ABBins(models["latent"].bins.centres))
    print(
        f"Twemoji test split ({len(test)} images), "
        f"every model {budget['steps']} steps x {budget['batch_size']}"
    )
    print(f"{'model':<12}{'NLL nats/px':>13}{'AuC':>8}{'PSNR dB':>9}{'colourful':>11}")
    results = {}
    for kind, colorizer in models.items():
        m = evaluate(colorizer, test)
        results[kind] = m
        print(
            f"{kind:<12}{m['nll_nats_per_pixel']:>13.3f}{m['auc']:>8.4f}{m['psnr']:>9.2f}{m['colorfulness']:>11.2f}"
        )
    print(
        f"{'ground truth':<12}{'':>13}{'':>8}{'':>9}{results['latent']['colorfulness_ground_truth']:>11.2f}"
    )
    if args.openmoji is not None:
        images = args.openmoji / "images"
        data = load_data(str(images), 32, "test", ABBins(models["latent"].bins.centres))
        if args.openmoji_limit:
            keep = slice(0, args.openmoji_limit)
            data.L, data.ab, data.y, data.rgba = data.L[keep], data.ab[keep], data.y[keep], data.rgba[keep]
            data.names = data.names[keep]
        labels = load_labels(data.names, args.openmoji / "labels", 32)
        m = evaluate(models["latent"], data, labels)
        results["openmoji"] = m
        print(
            f"\nOpenMoji ({len(data)} images, {m['num_classes']} classes), "
            f"K = {m['segments']}, global Hungarian"
        )
        print(f"{'segmentation':<28}{'mIoU':>8}{'pixel acc':>11}")
        print(f"{'latent prior argmax P(z|x)':<28}{m['miou']:>8.4f}{m['pixel_accuracy']:>11.4f}")
        print(
            f"{'k-means on grey (L)':<28}{m['kmeans_grey_miou']:>8.4f}"
            f"{m['kmeans_grey_pixel_accuracy']:>11.4f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
