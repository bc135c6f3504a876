"""The estimators report: every estimator against the exact log P(y) of a LinearGaussian, then on the
Twemoji VAE and GAN runs (where no exact answer exists)."""

from __future__ import annotations

import json
import time
from pathlib import Path

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


def twemoji_sections(
    vae: Path | None, gan: Path | None, num_images: int, quick: bool, out: Path
) -> tuple[list[str], dict]:
    from latentvar.demos.generator import image_grid, interpolations, load_eval, loglik, sample_images

    sections, results = ["<h2>Twemoji 32×32: a VAE and a GAN with the same DCGAN decoder</h2>"], {}
    runs = {name: path for name, path in [("VAE", vae), ("GAN", gan)] if path is not None}
    if not runs:
        sections.append("<p class='note'>No runs given (--vae / --gan): nothing measured on Twemoji.</p>")
        return sections, results
    k = 100 if quick else 1000
    ais_images = min(num_images, 3 if quick else 20)
    ais_steps = 50 if quick else 350
    rows = []
    for name, path in runs.items():
        run = load_eval(Path(path))
        ll = loglik(Path(path), "twemoji", ["elbo"], "test", num_images, 100, show_progress=False)
        ll |= loglik(Path(path), "twemoji", ["iwae"], "test", num_images, k, show_progress=False)
        ll |= loglik(
            Path(path), "twemoji", ["ais"], "test", ais_images, k, ais_steps, 16, show_progress=False
        )
        # IWAE on the same images as AIS, for a like-for-like comparison
        same = loglik(Path(path), "twemoji", ["iwae"], "test", ais_images, k, show_progress=False)
        ll["iwae (AIS images)"] = same["iwae"]
        results[name] = ll | {"sigma": float(run.model.likelihood.sigma.detach()), "meta": run.meta}
        for est, r in ll.items():
            rows.append(
                [
                    name,
                    est,
                    r["num_images"],
                    r["num_samples"],
                    r["nats_per_image"],
                    r["stderr"],
                    r["bits_per_dim"],
                ]
            )
        sample_png = report.png_bytes(image_grid(sample_images(run, 64), 8))
        interp_png = report.png_bytes(image_grid(interpolations(run), 10))
        sections.append(f"<h3>{name}: samples (decoder means at z ~ N(0, I)) and slerp interpolations</h3>")
        sections.append(
            report.img(sample_png, width=300, pixelated=True)
            + " "
            + report.img(interp_png, width=400, pixelated=True)
        )
        (out / f"{name.lower()}_samples.png").write_bytes(sample_png)
        (out / f"{name.lower()}_interpolations.png").write_bytes(interp_png)
    sections.append("<h3>−log P(y) on test images (nats per image, lower is better)</h3>")
    sections.append(
        report.table(
            ["model", "estimator", "images", "k / chains", "nats/image", "stderr", "bits/dim"],
            rows,
            fmt="{:.2f}",
        )
    )
    return sections, results


def write_report(
    out: Path,
    vae: Path | None,
    gan: Path | None,
    num_images: int = 50,
    quick: bool = False,
    reuse: bool = False,
) -> Path:
    """Write OUT/report.html and OUT/results.json. With ``reuse``, the LinearGaussian part is read from
    OUT/linear_gaussian.json (written by an earlier call) instead of being recomputed, and so is the
    Twemoji part (OUT/twemoji.json) when no run is given. The closing interpretation is written from the
    measured numbers by ``interpretation`` (nothing hand-written is appended)."""
    from latentvar.io import atomic_write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "linear_gaussian.json"
    if reuse and cache.exists():
        cached = json.loads(cache.read_text())
        lg_sections, lg_results = cached["sections"], cached["results"]
    else:
        lg_sections, lg_results = linear_gaussian_experiments(quick)
        atomic_write_json(cache, {"sections": lg_sections, "results": lg_results})
    iw_sections, iw_results = iwae_poor_encoder_section()
    lg_sections, lg_results = lg_sections + iw_sections, lg_results | {"iwae_poor_encoder": iw_results}
    tw_cache = out / "twemoji.json"
    if reuse and tw_cache.exists() and vae is None and gan is None:
        cached = json.loads(tw_cache.read_text())
        tw_sections, tw_results = cached["sections"], cached["results"]
    else:
        tw_sections, tw_results = twemoji_sections(vae, gan, num_images, quick, out)
        atomic_write_json(tw_cache, {"sections": tw_sections, "results": tw_results})

    atomic_write_json(out / "results.json", {"linear_gaussian": lg_results, "twemoji": tw_results})
    notes = [interpretation(lg_results, tw_results)]
    report.write(
        out / "report.html",
        "latentvar: image generators and honest estimators of log P(y)",
        lg_sections + tw_sections + notes,
    )
    return out / "report.html"


def _by_key(table: dict, key):
    """``table[key]`` for results computed now (int keys) or read back from JSON (str keys)."""
    return table[key] if key in table else table[str(key)]


def _sorted_items(table: dict) -> list:
    return sorted(((int(k), v) for k, v in table.items()), key=lambda kv: kv[0])


def _pm(stderr: float, digits: int) -> str:
    """' ± stderr', or nothing where the stderr is undefined (NaN for a single sample)."""
    return "" if stderr != stderr else f" ± {stderr:.{digits}f}"


def _linear_gaussian_text(lg: dict) -> str:
    exact = lg["exact"]
    naive = ", ".join(f"{r[3]:.2f} at d_y = {r[0]}" for r in lg["naive_mc_bias"]["rows"])
    iwae = ", ".join(f"{v[0] - exact:+.3f}{_pm(v[1], 3)} (k = {k})" for k, v in _sorted_items(lg["iwae"]))
    elbo = ", ".join(f"{v[0] - exact:+.3f} (k = {k})" for k, v in _sorted_items(lg["elbo"]))
    ais = ", ".join(f"{v[0] - exact:+.2f} ± {v[1]:.2f} ({t} steps)" for t, v in _sorted_items(lg["ais"]))
    bdmc = ", ".join(
        f"[{v[0]:+.2f}, {v[1]:+.2f}] ({t} steps)" for t, v in _sorted_items(lg["bdmc_minus_exact"])
    )
    text = (
        f"<p><b>LinearGaussian (exact log P(y) known).</b> Naive MC with "
        f"{lg['naive_mc_bias']['num_samples']:,} prior samples is low by {naive} nats. With the good "
        f"mean-field encoder, IWAE − exact is {iwae}; the ELBO − exact is {elbo}. AIS (16 chains) − exact "
        f"is {ais}. BDMC [lower, upper] − exact on simulated data: {bdmc}.</p>"
    )
    poor = lg.get("iwae_poor_encoder")
    if poor:
        rows = ", ".join(f"{r[1]:+.2f} (k = {r[0]})" for r in poor["rows"])
        text += f"<p>With the over-dispersed encoder, IWAE − exact is {rows}.</p>"
    return text


def _twemoji_text(tw: dict) -> str:
    parts = []
    for name, res in tw.items():
        items = []
        for est, r in res.items():
            if not isinstance(r, dict) or "nats_per_image" not in r:
                continue
            ess = f", ESS {r['mean_ess']:.1f} of {r['num_samples']}" if "mean_ess" in r else ""
            items.append(
                f"{est} {r['nats_per_image']:,.0f} ± {r['stderr']:.2f} nats ({r['num_images']} images{ess})"
            )
        parts.append(f"{name}: " + "; ".join(items))
    degenerate = [
        name
        for name, res in tw.items()
        if isinstance(res.get("ais"), dict) and res["ais"].get("mean_ess", 2) < 2
    ]
    text = (
        "<p><b>Twemoji test images, −log P(y) (lower is tighter: every estimator is a stochastic lower "
        "bound on log P(y)).</b> " + ". ".join(parts) + ".</p>"
    )
    if degenerate:
        text += (
            f"<p>AIS's chain weights are degenerate for {', '.join(degenerate)} (ESS below 2): its delta-"
            "method stderr understates the error there; see BDMC in BENCHMARKS.md.</p>"
        )
    return text


def interpretation(lg_results: dict, tw_results: dict) -> str:
    """The report's closing section, written from the measured numbers (no hand-written notes)."""
    return "<h2>What the numbers show</h2><div class='note'>" + (
        _linear_gaussian_text(lg_results) + (_twemoji_text(tw_results) if tw_results else "") + "</div>"
    )


def load_results(out: Path) -> dict:
    return json.loads((Path(out) / "results.json").read_text())
