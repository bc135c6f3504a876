"""The estimators report (`latentvar generator report`): every estimator against the exact log P(y) of a
LinearGaussian (`linear_gaussian.py`), then on the Twemoji VAE and GAN runs (where no exact answer
exists), and the closing interpretation written from the measured numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from latentvar import report
from latentvar.apps.images.linear_gaussian import iwae_poor_encoder_section, linear_gaussian_experiments


def twemoji_sections(
    vae: Path | None, gan: Path | None, num_images: int, quick: bool, out: Path
) -> tuple[list[str], dict]:
    from latentvar.apps.images.evaluate import loglik
    from latentvar.apps.images.samples import image_grid, interpolations, sample_images
    from latentvar.apps.images.train import load_eval

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
