"""Evaluate a `Colorizer` on a data set: NLL (nats per pixel over the Q bins), AuC, PSNR, colourfulness,
and -- given per-pixel class labels -- mIoU and pixel accuracy of its prior segmentation after one global
Hungarian matching, next to k-means on grey intensity with the same K (one k-means over all pixels' L, so
cluster ids mean the same thing in every image)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.lab import lab_to_rgb, to_float_rgb
from latentvar.colorize.metrics import (
    auc,
    auc_parts,
    auc_rebalanced,
    colorfulness,
    colorfulness_per_image,
    confusion,
    hungarian_segmentation_scores,
    psnr,
    psnr_per_image,
)
from latentvar.colorize.train import ColourData

IGNORE = 255


def grey_baseline(size: int = 32, data: str = "twemoji") -> Colorizer:
    """The grey baseline; its Gaussian's variance comes from the *train* split of ``data`` (Twemoji, or a
    photo corpus: its train views), never from test data."""
    from latentvar.colorize.colorizer import grey_residual_var
    from latentvar.colorize.crops import EVAL_SIDE, corpus_dir, fixed_views, split_paths
    from latentvar.colorize.images import rgba_to_lab
    from latentvar.data.twemoji import load_twemoji

    root = corpus_dir(data)
    train = fixed_views(split_paths(root, "train"), EVAL_SIDE) if root else load_twemoji("train", 32)
    _, ab = rgba_to_lab(train)
    return Colorizer.grey(grey_residual_var(ab), size)


@torch.no_grad()
def predict(
    colorizer: Colorizer,
    data: ColourData,
    temperature: float | None = None,
    batch: int = 16,
    show_progress: bool = False,
    rebalance: float | None = None,
):
    """(each image's NLL in nats summed over its pixels (n,), predicted ab (n, h, w, 2), prior segments
    (n, h, w) or None), on the model's device; ``temperature`` and ``rebalance`` None: the model's own
    (`Colorizer.colorize`)."""
    from latentvar.progress import progress

    model, bins, device = colorizer.model, colorizer.bins, colorizer.device
    temperature = colorizer.temperature if temperature is None else temperature
    point = colorizer.kind in ("regression", "grey")
    weights = colorizer.rebalance_weights(rebalance)  # None for λ = 0 (a point model's own λ)
    log_weights = None if weights is None else weights.log()
    centres = bins.centres.to(device)
    nats, abs_, segs = [], [], []
    starts = range(0, len(data), batch)
    for start in progress(starts, desc=f"eval {colorizer.kind}", disable=not show_progress):
        L, y = data.L[start : start + batch].to(device), data.y[start : start + batch].to(device)
        logp = model.log_probs(L)
        nats.append(-logp.gather(-1, y.unsqueeze(-1)).flatten(1).double().sum(1).cpu())
        if point:
            abs_.append(model.predict_ab(L).cpu())
        else:
            tilted = logp if log_weights is None else logp + log_weights
            abs_.append((torch.softmax(tilted / temperature, -1) @ centres).cpu())
        if colorizer.kind == "latent":
            segs.append(model.mixture(L).log_weights.argmax(-1).cpu())
    return torch.cat(nats), torch.cat(abs_), (torch.cat(segs) if segs else None)


def per_image_parts(data: ColourData, nats, pred_ab, pred_rgb, true_rgb, centres) -> dict:
    """Each image's share of the set's metrics, lists in image order: ``image`` (names), ``pixels``,
    ``nll_nats`` (summed over its pixels), ``auc_area`` / ``auc_rebalanced_area`` and
    ``auc_rebalanced_weight`` (`metrics.auc_parts`: the set's rebalancing weights), ``psnr``,
    ``colorfulness`` and ``colorfulness_ground_truth``. Each set metric is a ratio of sums over images
    (`bootstrap.RATIOS`)."""
    area, pixels = auc_parts(pred_ab, data.ab)
    area_rb, weight_rb = auc_parts(pred_ab, data.ab, centres)
    columns = {
        "pixels": pixels,
        "nll_nats": nats,
        "auc_area": area,
        "auc_rebalanced_area": area_rb,
        "auc_rebalanced_weight": weight_rb,
        "psnr": psnr_per_image(pred_rgb, true_rgb),
        "colorfulness": colorfulness_per_image(pred_rgb),
        "colorfulness_ground_truth": colorfulness_per_image(true_rgb),
    }
    return {"image": [str(n) for n in data.names], **{k: v.double().tolist() for k, v in columns.items()}}


def kmeans_grey_segments(L: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """One k-means (k clusters) over every pixel's L: labels (n, h, w), ids sorted by cluster lightness."""
    from sklearn.cluster import KMeans

    flat = L.reshape(-1, 1).numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    fit_on = flat[rng.choice(len(flat), size=min(len(flat), 200_000), replace=False)]  # enough for 1-D
    km = KMeans(k, n_init=4, random_state=seed).fit(fit_on)
    order = np.argsort(np.argsort(km.cluster_centers_[:, 0]))
    return order[km.predict(flat)].reshape(L.shape)


def load_labels(paths: list[str], labels_dir: str | os.PathLike, size: int) -> np.ndarray:
    """Label PNGs ``labels_dir/<stem>.png`` (uint8 class ids, 255 = ignore) for each image path: (n, S, S)."""
    from PIL import Image

    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise ValueError(f"labels: expected a folder of label PNGs, got {str(labels_dir)!r}")
    out = np.full((len(paths), size, size), IGNORE, np.uint8)
    for i, p in enumerate(paths):
        f = labels_dir / f"{Path(p).stem}.png"
        if not f.exists():
            raise ValueError(f"labels: no label file {f.name} in {labels_dir} for image {p}")
        with Image.open(f) as im:
            out[i] = np.asarray(im.convert("L").resize((size, size), Image.Resampling.NEAREST))
    return out


def evaluate(
    colorizer: Colorizer,
    data: ColourData,
    labels: np.ndarray | None = None,
    temperature: float | None = None,
    show_progress: bool = False,
    rebalance: float | None = None,
    per_image: bool = False,
) -> dict:
    """The issue's metrics as a dict (JSON keys of ``latentvar colorize eval``). ``per_image``: also
    ``per_image``, each image's share of them (`per_image_parts`), for intervals (`colorize.bootstrap`)."""
    temperature = colorizer.temperature if temperature is None else temperature
    rebalance = colorizer.rebalance if rebalance is None else rebalance
    nats, pred_ab, segments = predict(
        colorizer, data, temperature, show_progress=show_progress, rebalance=rebalance
    )
    true_rgb = to_float_rgb(data.rgba)
    pred_rgb = lab_to_rgb(torch.cat([data.L[..., None], pred_ab], dim=-1))
    result = {
        "model": colorizer.kind,
        "num_images": len(data),
        "num_skipped": data.num_skipped,
        "num_bins": colorizer.bins.num_bins,
        "nll_nats_per_pixel": float(nats.sum()) / data.y.numel(),
        "nll_note": (
            "exact marginal NLL over the Q bins"
            if colorizer.kind in ("latent", "per-pixel")
            else "NLL of a Gaussian over the Q bins centred on the point prediction, variance = training MSE"
        ),
        "auc": auc(pred_ab, data.ab),
        "auc_rebalanced": auc_rebalanced(pred_ab, data.ab, colorizer.bins.centres),
        "psnr": psnr(pred_rgb, true_rgb),
        "colorfulness": colorfulness(pred_rgb),
        "colorfulness_ground_truth": colorfulness(true_rgb),
        "temperature": temperature,
        "rebalance": rebalance,
    }
    if per_image:
        result["per_image"] = per_image_parts(data, nats, pred_ab, pred_rgb, true_rgb, colorizer.bins.centres)
    if labels is not None:
        num_classes = int(labels[labels != IGNORE].max()) + 1
        lab = labels.astype(np.int64)
        lab[labels == IGNORE] = -1
        k = colorizer.meta.get("config", {}).get("segments", 8)
        km = kmeans_grey_segments(data.L, k)
        if segments is not None:
            conf = confusion(segments.numpy(), lab, k, num_classes)
            scores = hungarian_segmentation_scores(conf)
            result["miou"], result["pixel_accuracy"] = scores["miou"], scores["pixel_accuracy"]
            if per_image:  # (n, k, c) each: the set's confusions are their sums (`bootstrap.miou_intervals`)
                result["per_image"]["confusion"] = confusion(
                    segments.numpy(), lab, k, num_classes, per_image=True
                )
                result["per_image"]["kmeans_grey_confusion"] = confusion(
                    km, lab, k, num_classes, per_image=True
                )
        km_scores = hungarian_segmentation_scores(confusion(km, lab, k, num_classes))
        result["kmeans_grey_miou"] = km_scores["miou"]
        result["kmeans_grey_pixel_accuracy"] = km_scores["pixel_accuracy"]
        result["num_classes"] = num_classes
        result["segments"] = k
    return result
