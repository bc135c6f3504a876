"""The digits RBM report: the log-likelihood table (AIS ± stderr beside exact where it exists), the val
curve that chose each model's epoch, the learned filters, and Gibbs chains at several lengths.

Shapes (named axes): ``n`` images, ``d`` = 64 pixels, ``k`` hidden units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from latentvar import report
from latentvar.apps.rbm.data import SIDE

SCALE = 6  # screen pixels per image pixel


def mosaic(images: Tensor | np.ndarray, columns: int = 10) -> np.ndarray:
    """Images (n, 64) with values in [0, 1] as one grid (rows of ``columns``), a 1-pixel grey gap between."""
    images = np.asarray(images, dtype=np.float64).reshape(-1, SIDE, SIDE)
    rows = -(-len(images) // columns)
    cell = SIDE + 1
    grid = np.full((rows * cell + 1, columns * cell + 1), 0.5)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[1 + r * cell : 1 + r * cell + SIDE, 1 + c * cell : 1 + c * cell + SIDE] = image
    return np.kron(grid, np.ones((SCALE, SCALE)))


def filters(W: Tensor) -> np.ndarray:
    """Each hidden unit's weights W[:, j] as an image, scaled by its own largest |weight| to [0, 1]
    (0.5 is zero, white excitatory, black inhibitory): (k, 64)."""
    w = W.T.double()
    return (0.5 + 0.5 * w / w.abs().amax(1, keepdim=True).clamp_min(1e-12)).numpy()


def picture(images, caption: str, columns: int = 10) -> str:
    png = report.png_bytes(mosaic(images, columns))
    return (
        f"<figure>{report.img(png, alt=caption, pixelated=True)}<figcaption>{caption}</figcaption></figure>"
    )


def val_curves(models: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for m in models:
        hist = m["history"]
        if hist:
            kind = "exact" if hist[0]["exact"] else "AIS"
            ax.plot(
                [h["epoch"] for h in hist],
                [h["val_loglik"] for h in hist],
                marker=".",
                label=f"{m['hidden']} hidden ({kind})",
            )
            ax.axvline(m["best_epoch"], ls=":", color=ax.lines[-1].get_color())
    ax.set(
        xlabel="epoch", ylabel="val mean log p(v) (nats)", title="val log-likelihood; dotted: epoch chosen"
    )
    ax.legend(fontsize=8)
    return report.img(report.figure_bytes(fig))


def results_table(results: dict) -> str:
    ind = results["independent_pixels"]
    rows = [
        ["independent pixels (exact)", 0, "-", f"{ind['test']:.3f}", f"{ind['test']:.3f}", "-", "-", "-", "-"]
    ]
    for m in results["models"]:
        t, z = m["test"], m["test"]["log_z"]
        exact = "-" if t["exact"] is None else f"{t['exact']:.3f}"
        exact_z = "-" if t["exact_log_z"] is None else f"{t['exact_log_z']:.3f}"
        rows.append(
            [
                f"RBM, PCD ({m['hidden']} hidden)",
                m["hidden"],
                m["best_epoch"],
                f"{t['ais']:.3f} ± {t['ais_stderr']:.3f}",
                exact,
                f"{z['log_z']:.3f} ± {z['stderr']:.3f}",
                exact_z,
                f"{z['chains']} × {z['steps']}",
                f"{z['ess']:.0f}",
            ]
        )
    head = [
        "model",
        "hidden",
        "epoch (val)",
        "test log p(v), AIS",
        "test log p(v), exact",
        "log Z, AIS",
        "log Z, exact",
        "AIS chains × steps",
        "ESS",
    ]
    return report.table(head, rows)


def write(out: Path, results: dict, gallery: list[dict], test_x: Tensor) -> Path:
    """DIR/report.html from ``results`` (results.json's content) and, per model, ``gallery`` entries
    {hidden, W, chains: {steps: images}, fantasy} of images to draw."""
    d = results["data"]
    sections = [
        "<p class='note'>scikit-learn's 8×8 digits binarised at 8 of 16, split once by a seeded permutation "
        f"into {d['train']} train / {d['val']} val / {d['test']} test images. RBMs trained by persistent "
        "contrastive divergence; each model's epoch was chosen on val. log p(v) = log f(v) - log Z with "
        "log f(v) exact (the hidden units sum out): the only estimate is log Z, by AIS from the "
        "independent-pixels model along Salakhutdinov &amp; Murray's (2008) path. AIS underestimates log Z "
        "in expectation, so its log-likelihood errs upward; ± is the estimator's stderr over chains (delta "
        "method), not the spread of the test set. Exact values: log Z by enumerating 2^n_h hidden states.</p>",
        "<h2>Test log-likelihood (nats per image)</h2>",
        results_table(results),
        "<h2>Choosing the epoch on val</h2>",
        val_curves(results["models"]),
    ]
    for g in gallery:
        sections.append(f"<h2>{g['hidden']} hidden units</h2>")
        sections.append(picture(filters(g["W"])[:100], "filters W[:, j] (white +, black -, grey 0)"))
        for steps, images in g["chains"].items():
            sections.append(picture(images, f"{steps} Gibbs steps from independent pixels"))
        sections.append(picture(g["fantasy"], "PCD's persistent chains at the end of training"))
    sections.append("<h2>Test images</h2>")
    sections.append(picture(test_x[:30], "the first test images"))
    sections.append(report.table(["setting", "value"], [[k, str(v)] for k, v in results["settings"].items()]))
    return report.write(
        out / "report.html", "An RBM on binarised 8×8 digits: log-likelihood by AIS and exactly", sections
    )


def gibbs_gallery(rbm, log_odds: Tensor, steps: list[int], count: int, generator: torch.Generator) -> dict:
    """``count`` chains started from the independent-pixels model, their binary v after each of ``steps``
    block Gibbs sweeps (the same chains, continued): {steps: (count, 64)}."""
    v = (
        torch.rand(count, log_odds.numel(), generator=generator, dtype=torch.float64)
        < torch.sigmoid(log_odds)
    ).double()
    shown, done = {}, 0
    for s in sorted(steps):
        v = rbm.sample((count,), s - done, generator, init=v) if s > done else v
        done = s
        shown[s] = v
    return shown
