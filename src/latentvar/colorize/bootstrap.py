"""Intervals over images for a colorizer's evaluation (`latentvar colorize eval --bootstrap N`): how far a
set's numbers could move had other images of the same kind been drawn.

Every metric `evaluate` reports is a ratio of sums over images, Σ_i a_i / Σ_i b_i (`RATIOS`; the parts are
`evaluate.per_image_parts`): the NLL is nats over pixels, the AuC an area over pixels, PSNR and
colourfulness means over images, and the colourfulness ratio the model's over the truth's. One bootstrap
draw resamples the n images with replacement and recomputes each ratio; the interval is the draws' 2.5 and
97.5 percentiles (Efron & Tibshirani 1993, ch. 13). Two models on the same images are compared *paired*:
the same draws for both, the interval the difference's, so what the images share (a hard photo is hard for
both) cancels. What the intervals leave out: rebalanced AuC keeps the whole set's rebalancing weights (not
re-estimated per draw), and a model's own randomness (seed, training run) is not in them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

DRAWS = 2000
LEVEL = 0.95
FEW = 10  # fewer images than this: `format_intervals` says the intervals mean little
RATIOS = {  # metric -> (numerator, denominator or None: a mean over images), keys of per_image_parts
    "nll_nats_per_pixel": ("nll_nats", "pixels"),
    "auc": ("auc_area", "pixels"),
    "auc_rebalanced": ("auc_rebalanced_area", "auc_rebalanced_weight"),
    "psnr": ("psnr", None),
    "colorfulness": ("colorfulness", None),
    "colorfulness_ratio": ("colorfulness", "colorfulness_ground_truth"),
}
AGAINST_GREY = ("auc", "auc_rebalanced", "psnr")  # grey's NLL is another model's (a Gaussian): not compared


def resample_counts(n: int, draws: int = DRAWS, seed: int = 0, chunk: int = 250) -> Iterator[np.ndarray]:
    """How often each of n images is drawn in each bootstrap draw: chunks (m, n) of counts summing to n."""
    if n < 1:
        raise ValueError("images: a bootstrap needs at least one image")
    if draws < 1:
        raise ValueError(f"draws: expected a positive count, got {draws}")
    rng = np.random.default_rng(seed)
    for start in range(0, draws, chunk):
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, draws - start))


def interval(
    num: Sequence[float],
    den: Sequence[float] | None = None,
    minus: tuple[Sequence[float], Sequence[float] | None] | None = None,
    draws: int = DRAWS,
    seed: int = 0,
    groups: Sequence | None = None,
) -> dict:
    """The ratio Σ num / Σ den over the images (den None: the mean of num), or with ``minus`` = (num', den')
    of a second model on the same images the paired difference; {"value", "ci95": [lo, hi]}. ``groups``
    (one key per image): images that are not independent (composites on one background photo) are drawn
    together, a draw resampling the groups (a cluster bootstrap)."""
    num = np.asarray(num, dtype=np.float64)
    parts = [(num, np.ones_like(num) if den is None else np.asarray(den, dtype=np.float64))]
    if minus is not None:
        other = np.asarray(minus[0], dtype=np.float64)
        if other.shape != num.shape:
            raise ValueError(f"minus: expected {num.shape[0]} images as in num, got {other.shape[0]}")
        parts.append((other, np.ones_like(other) if minus[1] is None else np.asarray(minus[1], np.float64)))
    if groups is not None:
        if len(groups) != num.shape[0]:
            raise ValueError(f"groups: expected one key per image ({num.shape[0]}), got {len(groups)}")
        first = {}  # groups in order of first appearance: ungrouped images keep their order (and draws)
        index = np.array([first.setdefault(str(g), len(first)) for g in groups])
        parts = [(np.bincount(index, n), np.bincount(index, d)) for n, d in parts]  # sums per group

    def stat(counts: np.ndarray) -> np.ndarray:
        values = [(counts @ n) / (counts @ d) for n, d in parts]
        return values[0] - values[1] if len(values) == 2 else values[0]

    units = parts[0][0].shape[0]
    samples = np.concatenate([stat(c) for c in resample_counts(units, draws, seed)])
    lo, hi = np.quantile(samples, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return {"value": float(stat(np.ones((1, units)))[0]), "ci95": [float(lo), float(hi)]}


def intervals(
    per_image: dict, against: dict | None = None, metrics: Sequence[str] | None = None, draws: int = DRAWS,
    seed: int = 0,
) -> dict:  # fmt: skip
    """Each of ``metrics`` (default: all of `RATIOS`; against another model: `AGAINST_GREY`) over
    ``per_image`` (`evaluate(..., per_image=True)["per_image"]`) as {"value", "ci95"}; ``against``: another
    model's per_image on the same images, and then the paired difference, model − other. Same seed, same
    draws for every metric."""
    if against is not None and list(against["image"]) != list(per_image["image"]):
        raise ValueError("against: expected the same images in the same order as the model's")
    out = {}
    for metric in metrics or (RATIOS if against is None else AGAINST_GREY):
        if metric not in RATIOS:
            raise ValueError(f"metrics: expected names from {list(RATIOS)}, got {metric!r}")
        num, den = RATIOS[metric]
        minus = None if against is None else (against[num], None if den is None else against[den])
        out[metric] = interval(per_image[num], None if den is None else per_image[den], minus, draws, seed)
    return out


def miou_intervals(confusion: np.ndarray, baseline: np.ndarray, draws: int = DRAWS, seed: int = 0) -> dict:
    """mIoU after one global Hungarian matching (`metrics.hungarian_segmentation_scores`) from per-image
    confusions (n, k, c) of the model's segments and of a baseline's (k-means on grey): {"miou",
    "kmeans_grey_miou", "difference"}, each {"value", "ci95"}. Each draw sums the drawn images' confusions
    and matches again, so the matching's own variability is in the interval; the difference is paired."""
    from latentvar.colorize.metrics import hungarian_segmentation_scores

    if confusion.shape != baseline.shape:
        raise ValueError(f"baseline: expected confusions shaped {confusion.shape}, got {baseline.shape}")
    flat = [c.reshape(c.shape[0], -1).astype(np.float64) for c in (confusion, baseline)]
    shape = confusion.shape[1:]

    def miou(total: np.ndarray) -> float:
        return hungarian_segmentation_scores(total.reshape(shape))["miou"]

    values = [miou(f.sum(0)) for f in flat]
    samples = np.array(
        [
            [miou(row @ f) for f in flat]
            for counts in resample_counts(len(flat[0]), draws, seed)
            for row in counts
        ]
    )
    out = {}
    for key, value, drawn in (("miou", values[0], samples[:, 0]), ("kmeans_grey_miou", values[1], samples[:, 1]),
                              ("difference", values[0] - values[1], samples[:, 0] - samples[:, 1])):  # fmt: skip
        lo, hi = np.quantile(drawn, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
        out[key] = {"value": float(value), "ci95": [float(lo), float(hi)]}
    return out


def bootstrap_eval(colorizer, data, baseline=None, draws: int = DRAWS, seed: int = 0, **decode) -> dict:
    """`evaluate` of ``colorizer`` on ``data`` plus ``ci95`` (each metric's interval), ``per_image`` and
    ``bootstrap`` (how); with a ``baseline`` colorizer (the grey one) also ``vs_grey``: model − baseline on
    the same images, paired; with ``labels`` also ``vs_kmeans_grey`` (`miou_intervals`). ``decode``:
    evaluate's temperature / rebalance / labels / show_progress."""
    from latentvar.colorize.evaluate import evaluate

    result = evaluate(colorizer, data, per_image=True, **decode)
    result["ci95"] = {m: v["ci95"] for m, v in intervals(result["per_image"], draws=draws, seed=seed).items()}
    if baseline is not None:
        show = decode.get("show_progress", False)
        grey = evaluate(baseline, data, per_image=True, show_progress=show)
        result["vs_grey"] = intervals(result["per_image"], grey["per_image"], draws=draws, seed=seed)
    if "confusion" in result["per_image"]:
        parts = result["per_image"]
        result["vs_kmeans_grey"] = miou_intervals(
            parts["confusion"], parts["kmeans_grey_confusion"], draws, seed
        )
    result["bootstrap"] = {
        "draws": draws,
        "seed": seed,
        "level": LEVEL,
        "unit": "image",
        "method": "percentile",
    }
    return result


def format_intervals(result: dict) -> str:
    """Lines for the terminal: each metric with its interval, then the differences from grey."""
    ci = result["ci95"]
    rows = [
        ("NLL nats/px", "nll_nats_per_pixel", 3),
        ("AuC", "auc", 4),
        ("rebalanced AuC", "auc_rebalanced", 4),
        ("PSNR dB", "psnr", 2),
        ("colourfulness", "colorfulness", 2),
        ("colourfulness / truth's", None, 3),
    ]
    n = result["num_images"]
    lines = [f"95 % intervals over {n} image{'s' if n != 1 else ''} ({result['bootstrap']['draws']} draws):"]
    if n < FEW:
        lines.append(f"  (only {n}: a bootstrap over so few images understates the spread; read no interval)")
    for label, key, digits in rows:
        if key is None:
            value = result["colorfulness"] / max(result["colorfulness_ground_truth"], 1e-12)
            lo, hi = ci["colorfulness_ratio"]
        else:
            value, (lo, hi) = result[key], ci[key]
        lines.append(f"  {label:<24}{value:>9.{digits}f}  [{lo:.{digits}f}, {hi:.{digits}f}]")
    if "vs_kmeans_grey" in result:
        for key, label in (("miou", "mIoU"), ("kmeans_grey_miou", "k-means on grey mIoU")):
            v = result["vs_kmeans_grey"][key]
            lines.append(f"  {label:<24}{v['value']:>9.4f}  [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]")
        d = result["vs_kmeans_grey"]["difference"]
        lines.append(
            f"  {'mIoU - k-means':<24}{d['value']:>+9.4f}  [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]  (paired)"
        )
    for key, diff in result.get("vs_grey", {}).items():
        lo, hi = diff["ci95"]
        lines.append(f"  {key + ' - grey':<24}{diff['value']:>+9.4f}  [{lo:+.4f}, {hi:+.4f}]  (paired)")
    return "\n".join(lines)


def segment_intervals(per_image: list[dict], method: str = "prior", metric: str = "ari", **kw) -> dict:
    """Segments (`segeval.score_set`'s per_image): {other method: {"value", "ci95"}} of ``method``'s mean
    ``metric`` minus the other's on the same photos, paired (photos where either is NaN left out). A
    composite (``stamp@background``) is drawn together with the other images on its background photo."""
    from latentvar.colorize.segeval import METHODS

    out = {}
    for other in METHODS:
        rows = [
            (p["scores"][method][metric], p["scores"][other][metric], p.get("image", str(i)).split("@")[-1])
            for i, p in enumerate(per_image)
            if other != method and other in p["scores"] and method in p["scores"]
        ]
        rows = [r for r in rows if not (np.isnan(r[0]) or np.isnan(r[1]))]
        if rows:
            a, b, background = zip(*rows, strict=True)
            out[other] = interval(a, minus=(b, None), groups=background, **kw)
    return out


def format_segment_intervals(diffs: dict, method: str = "prior", metric: str = "ari") -> str:
    """One line per other method: the paired difference of mean ``metric`` and its interval."""
    cells = [f"{o} {d['value']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" for o, d in diffs.items()]
    return f"{method} {metric} minus (paired, 95 % over photos): " + "; ".join(cells)
