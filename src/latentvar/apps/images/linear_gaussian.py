"""The estimators measured where the exact answer is known: a LinearGaussian (P(y) closed form), every
estimator of `latentvar.estimate` against exact log P(y) as samples, temperatures and encoders vary; the
first half of the estimators report (`latentvar generator report`, bench/estimators_bench.py).

Shapes: d_y observed and d_z latent dimensions.
"""

from __future__ import annotations

import time

import torch
import torch.distributions as D

from latentvar import estimate, report
from latentvar.generator import LinearGaussian

F64 = torch.float64


def benchmark_linear_gaussian(d_y: int = 256, d_z: int = 16, seed: int = 0) -> LinearGaussian:
    """The test generator of the report and bench: W ~ N(0, 1/16) entrywise, b ~ N(0, 1), σ = 1.
    Each latent dimension then explains ~16 observed units of variance, so the posterior is ~4x narrower
    than the prior per dimension and KL(posterior || prior) is ~20 nats: a hard but fair case."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_y, d_z, generator=g, dtype=F64) * 0.25
    b = torch.randn(d_y, generator=g, dtype=F64)
    return LinearGaussian(W, b, 1.0)


def mean_field_encoder(model: LinearGaussian):
    """A realistic imperfect encoder: q(z|y) = Π_d N(μ_d, 1/Λ_dd), the exact posterior mean with the
    KL(q || p)-optimal diagonal variances (Λ the posterior precision; Bishop PRML 10.1.2)."""

    def encoder(y):
        post = model.posterior(y)
        var = 1.0 / torch.diagonal(post.precision_matrix, dim1=-2, dim2=-1)
        return D.Independent(D.Normal(post.mean, var.sqrt()), 1)

    return encoder


def iwae_poor_encoder_section(num_images: int = 16, widen: float = 2.0) -> tuple[list[str], dict]:
    """IWAE with an over-dispersed encoder (mean-field std × ``widen``): with a poor q the climb of L_k
    towards log P(y) as k grows is visible; with the good mean-field q it is within noise of flat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.manual_seed(1)
    m = benchmark_linear_gaussian()
    _, y = m.sample((num_images,))
    exact = float(m.log_prob(y).mean())
    good = mean_field_encoder(m)

    def poor(images):
        q = good(images)
        return D.Independent(D.Normal(q.base_dist.loc, widen * q.base_dist.scale), 1)

    ks = [1, 3, 10, 30, 100, 300, 1000, 5000]
    iw = [estimate.iwae(m, y, poor, k) for k in ks]
    fig, ax = plt.subplots(figsize=(6, 4))
    _plot(ax, ks, {f"IWAE (mean-field std × {widen:g})": ([e.mean for e in iw], [e.mean_stderr for e in iw])},
          exact, "samples k", "IWAE with a poor encoder rises with k")  # fmt: skip
    rows = [[k, e.mean - exact, e.mean_stderr] for k, e in zip(ks, iw, strict=True)]
    sections = [
        f"<h3>IWAE with an over-dispersed encoder (std × {widen:g}), {num_images} images</h3>",
        report.img(report.figure_bytes(fig)),
        report.table(["k", "IWAE − exact", "stderr"], rows, fmt="{:.3f}"),
    ]
    return sections, {"exact": exact, "rows": rows}


def _plot(ax, xs, series: dict, exact: float | None, xlabel: str, title: str):
    for name, (values, errs) in series.items():
        ax.errorbar(xs, values, yerr=errs, marker="o", capsize=3, label=name)
    if exact is not None:
        ax.axhline(exact, color="k", ls="--", label="exact log P(y)")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean log P(y) estimate (nats)")
    ax.set_title(title)
    ax.legend(fontsize=8)


def linear_gaussian_experiments(quick: bool = False, num_images: int = 16) -> tuple[list[str], dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.manual_seed(0)
    results: dict = {}
    sections = ["<h2>LinearGaussian: estimators against the exact log P(y)</h2>"]
    sections.append(
        "<p class='note'>y = W z + b + σ ε with z ~ N(0, I<sub>16</sub>), y in R<sup>256</sup>, "
        "W<sub>ij</sub> ~ N(0, 1/16), b ~ N(0, 1), σ = 1 (<code>benchmark_linear_gaussian</code>). "
        "log P(y) = log N(y; b, WWᵀ+σ²I) is exact. "
        f"Each point averages {num_images} simulated images; error bars are ±1 Monte Carlo standard "
        "error of that mean (delta method for log-mean-exp estimators). The encoder for ELBO/IWAE is the "
        "mean-field Gaussian: exact posterior mean, KL-optimal diagonal variances.</p>"
    )
    # 1. naive MC's bias against dimension
    dims = [16, 32, 64, 128, 256]
    naive_k = 1000 if quick else 10000
    rows = []
    for d_y in dims:
        m = benchmark_linear_gaussian(d_y=d_y)
        _, y = m.sample((num_images,))
        exact = m.log_prob(y)
        est = estimate.naive_mc(m, y, naive_k)
        gap = float((exact - est.estimate).mean())
        rows.append([d_y, float(exact.mean()), est.mean, gap, est.mean_stderr])
    results["naive_mc_bias"] = {"num_samples": naive_k, "rows": rows}
    sections.append(
        f"<h3>Naive Monte Carlo (z ~ prior, k = {naive_k}): downward bias grows with dimension</h3>"
    )
    sections.append(
        report.table(["d_y", "exact", "naive MC", "bias (exact − estimate)", "stderr"], rows, fmt="{:.2f}")
    )
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(dims, [r[3] for r in rows], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("observed dimension d_y (d_z = 16)")
    ax.set_ylabel("exact − naive MC (nats)")
    ax.set_title(f"naive MC bias, k = {naive_k}")
    sections.append(report.img(report.figure_bytes(fig)))

    # 2. IWAE / ELBO vs k, naive MC vs k, on d_y = 256
    m = benchmark_linear_gaussian()
    _, y = m.sample((num_images,))
    exact = float(m.log_prob(y).mean())
    enc = mean_field_encoder(m)
    ks = [1, 10, 100, 1000] if quick else [1, 10, 100, 1000, 5000]
    iw = [estimate.iwae(m, y, enc, k) for k in ks]
    el = [estimate.elbo(m, y, enc, k) for k in ks]
    nv = [estimate.naive_mc(m, y, k) for k in ks]
    results["exact"] = exact
    results["iwae"] = {k: [e.mean, e.mean_stderr] for k, e in zip(ks, iw, strict=True)}
    results["elbo"] = {k: [e.mean, e.mean_stderr] for k, e in zip(ks, el, strict=True)}
    results["naive_mc"] = {k: [e.mean, e.mean_stderr] for k, e in zip(ks, nv, strict=True)}
    # 3. AIS and BDMC vs number of temperatures
    steps = [10, 30, 100, 300] if quick else [10, 30, 100, 300, 1000]
    chains = 16
    ais_res, bd_res, times = [], [], []
    for t in steps:
        t0 = time.time()
        ais_res.append(estimate.ais(m, y, t, chains))
        times.append(time.time() - t0)
        bd = estimate.bdmc(m, num_images, t, chains)
        ex = m.log_prob(bd.y).mean()
        bd_res.append(
            (bd.lower.mean - float(ex), bd.upper.mean - float(ex), bd.lower.mean_stderr, bd.upper.mean_stderr)
        )
    results["ais"] = {t: [a.mean, a.mean_stderr, s] for t, a, s in zip(steps, ais_res, times, strict=True)}
    results["bdmc_minus_exact"] = {t: list(b) for t, b in zip(steps, bd_res, strict=True)}

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    _plot(
        axes[0],
        ks,
        {
            "IWAE (mean-field q)": ([e.mean for e in iw], [e.mean_stderr for e in iw]),
            "ELBO (mean-field q)": ([e.mean for e in el], [e.mean_stderr for e in el]),
        },
        exact,
        "samples k",
        "Good mean-field q: IWAE is within noise of exact at every k; the ELBO stays below",
    )
    _plot(
        axes[1],
        ks,
        {"naive MC": ([e.mean for e in nv], [e.mean_stderr for e in nv])},
        exact,
        "samples k",
        "naive MC",
    )
    axes[1].set_yscale("symlog")
    _plot(
        axes[2],
        steps,
        {"AIS (16 chains)": ([a.mean for a in ais_res], [a.mean_stderr for a in ais_res])},
        exact,
        "AIS temperatures",
        "AIS vs number of steps",
    )
    sections.append("<h3>Estimate against number of samples / steps (d_y = 256)</h3>")
    sections.append(report.img(report.figure_bytes(fig)))
    sections.append(
        report.table(
            ["k", "IWAE − exact", "±", "ELBO − exact", "±", "naive MC − exact", "±"],
            [
                [
                    k,
                    a.mean - exact,
                    a.mean_stderr,
                    b.mean - exact,
                    b.mean_stderr,
                    c.mean - exact,
                    c.mean_stderr,
                ]
                for k, a, b, c in zip(ks, iw, el, nv, strict=True)
            ],
            fmt="{:.3f}",
        )
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(
        steps,
        [b[0] for b in bd_res],
        yerr=[b[2] for b in bd_res],
        marker="o",
        capsize=3,
        label="forward AIS (lower)",
    )
    ax.errorbar(
        steps,
        [b[1] for b in bd_res],
        yerr=[b[3] for b in bd_res],
        marker="s",
        capsize=3,
        label="reverse AIS (upper)",
    )
    ax.axhline(0, color="k", ls="--", label="exact")
    ax.set_xscale("log")
    ax.set_xlabel("AIS temperatures")
    ax.set_ylabel("estimate − exact (nats)")
    ax.set_title("BDMC brackets log P(y) on simulated data")
    ax.legend(fontsize=8)
    sections.append("<h3>AIS and BDMC against the number of temperatures</h3>")
    sections.append(report.img(report.figure_bytes(fig)))
    sections.append(
        report.table(
            ["steps", "AIS − exact", "±", "seconds", "BDMC lower − exact", "±", "BDMC upper − exact", "±"],
            [
                [t, a.mean - exact, a.mean_stderr, s, b[0], b[2], b[1], b[3]]
                for t, a, s, b in zip(steps, ais_res, times, bd_res, strict=True)
            ],
            fmt="{:.3f}",
        )
    )
    return sections, results
