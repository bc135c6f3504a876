"""`latentvar mixture fit`: a Gaussian mixture fitted by exact EM to a real tabular data set, checked against
sklearn's GaussianMixture, scored against the true classes, with a checkpoint, metrics.json and a report
(clusters in the first two principal components, the EM curve)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentvar import report
from latentvar.data.tabular import load_tabular
from latentvar.io import atomic_write_json, save_checkpoint
from latentvar.mixture import Mixture, gaussian_mixture_init


def run(data: str, k: int, covariance: str, method: str, max_iter: int, seed: int, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score, v_measure_score
    from sklearn.mixture import GaussianMixture

    out = Path(out)
    x, labels, features, classes = load_tabular(data)
    init = gaussian_mixture_init(x, k, covariance, seed=seed)
    result = init.fit(x, method=method, max_iter=max_iter, tol=1e-8, show_progress=True)
    model: Mixture = result.model
    post = model.posterior(x)
    z = post.mode.numpy()
    confidence = post.marginals.max(-1).values.numpy()

    # The same fit by sklearn, from k-means with the same seed: an independent reference.
    sk = GaussianMixture(k, covariance_type=covariance, tol=1e-8, max_iter=max_iter, random_state=seed)
    sk.fit(x.numpy())
    metrics = {
        "data": data,
        "num_examples": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "components": k,
        "covariance": covariance,
        "method": method,
        "iterations": result.n_iter,
        "converged": result.converged,
        "mean_loglik": float(model.log_prob(x).mean()),
        "sklearn_mean_loglik": float(sk.score(x.numpy())),
        "adjusted_rand_vs_classes": float(adjusted_rand_score(labels.numpy(), z)),
        "v_measure_vs_classes": float(v_measure_score(labels.numpy(), z)),
        "mean_posterior_confidence": float(confidence.mean()),
    }

    tensors = {"logits": model.logits, "loc": model.components.mean}
    if covariance == "full":
        tensors["covariance"] = model.components.covariance_matrix
    else:
        tensors["scale"] = model.components.base_dist.scale
    save_checkpoint(out, tensors, {"kind": "gaussian-mixture", **metrics})
    atomic_write_json(out / "metrics.json", metrics)

    # Pictures: clusters in the first two principal components, and the EM curve.
    pca = PCA(2).fit(x.numpy())
    p = pca.transform(x.numpy())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    cmap = plt.get_cmap("tab10")
    for j in range(k):
        m = z == j
        axes[0].scatter(
            p[m, 0], p[m, 1], s=18, color=cmap(j), alpha=np.clip(confidence[m], 0.25, 1.0), label=f"z={j}"
        )
    mu = pca.transform(model.components.mean.numpy())
    axes[0].scatter(mu[:, 0], mu[:, 1], marker="x", s=120, color="k", label="component means")
    axes[0].set(title=f"{data}: posterior mode (opacity = max posterior)", xlabel="PC 1", ylabel="PC 2")
    axes[0].legend(fontsize=8)
    for c in np.unique(labels.numpy()):
        m = labels.numpy() == c
        axes[1].scatter(p[m, 0], p[m, 1], s=18, color=cmap(int(c) + 3), label=str(classes[int(c)]))
    axes[1].set(title=f"{data}: true classes (never seen by EM)", xlabel="PC 1")
    axes[1].legend(fontsize=8)
    scatter_png = report.figure_bytes(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(np.arange(1, result.n_iter + 1), result.history, marker=".")
    ax.axhline(metrics["sklearn_mean_loglik"], color="gray", ls="--", label="sklearn GaussianMixture")
    ax.set(xlabel="EM iteration", ylabel="mean log P(y) (nats)", title="EM never decreases the likelihood")
    ax.legend()
    curve_png = report.figure_bytes(fig)

    rows = [[key, value if not isinstance(value, float) else float(value)] for key, value in metrics.items()]
    report.write(
        out / "report.html",
        f"latentvar: Gaussian mixture on {data}",
        [
            "<p class='note'>P(y) = Σ<sub>z</sub> π<sub>z</sub> N(y; μ<sub>z</sub>, Σ<sub>z</sub>), fitted by "
            "exact EM on standardised features. The posterior P(z|y) is exact; the class labels are used "
            "only to score the clusters.</p>",
            "<h2>Metrics</h2>",
            report.table(["metric", "value"], rows),
            "<h2>Clusters</h2>",
            report.img(scatter_png),
            "<h2>Training curve</h2>",
            report.img(curve_png),
        ],
    )
    return metrics
