"""`make demo`: OUT/report.html with two sections.

- Photos: the shipped photo model on the shipped held-out photos (grey | prior segments overlay |
  posterior segments overlay | colorized | three samples | ground truth) and its test metrics.
- Twemoji: a short run of the latent model and the baselines with the same budget on the embedded
  Twemoji train split, evaluated on its test split (the same columns at 32×32; metrics; curves).
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import numpy as np
import torch

from latentvar import report
from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.evaluate import evaluate, grey_baseline
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.train import TrainConfig, load_data, train
from latentvar.colorize.visual import overlay, segment_colours
from latentvar.io import atomic_write_json

# A budget that keeps `make demo` under 5 minutes on 2 shared CPU cores (see BENCHMARKS.md).
DEMO_STEPS = 150
DEMO_BATCH = 64
SHOWN_IMAGES = 12


def _grey(rgba: np.ndarray) -> np.ndarray:
    from latentvar.colorize.images import rgba_to_lab
    from latentvar.colorize.lab import lab_to_rgb

    L, _ = rgba_to_lab(rgba)
    lab = torch.stack([L, torch.zeros_like(L), torch.zeros_like(L)], dim=-1)
    return (lab_to_rgb(lab) * 255 + 0.5).to(torch.uint8).numpy()


def _on_white(rgba: np.ndarray) -> np.ndarray:
    from latentvar.colorize.lab import to_float_rgb

    return (to_float_rgb(rgba) * 255 + 0.5).to(torch.uint8).numpy()


def _cell(image: np.ndarray) -> str:
    return f"<td>{report.img(report.png_bytes(image), width=96, pixelated=True)}</td>"


def _gallery(models: dict[str, Colorizer], rgba: np.ndarray, names: list[str]) -> str:
    latent = models["latent"]
    generator = torch.Generator().manual_seed(0)
    heads = ["image", "grey input", "prior P(z|x)", "posterior P(z|x,y)", "latent colorized"]
    heads += ["sample 1", "sample 2", "sample 3", "per-pixel", "regression", "ground truth"]
    rows = []
    for img, name in zip(rgba, names, strict=True):
        cells = [f"<td>{name}</td>", _cell(_grey(img))]
        cells.append(_cell(segment_colours(latent.segment(img))))
        cells.append(_cell(segment_colours(latent.posterior_segment(img, img))))
        cells.append(_cell(latent.colorize(img)))
        cells += [_cell(s) for s in latent.sample(img, 3, generator=generator)]
        cells += [_cell(models["per-pixel"].colorize(img)), _cell(models["regression"].colorize(img))]
        cells.append(_cell(_on_white(img)))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f"<table class='gallery'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def photo_examples() -> list[tuple[str, np.ndarray, str]]:
    """The shipped held-out photos (test split of the photo corpus): (id, RGB uint8, licence line)."""
    from latentvar.colorize.images import read_image

    folder = Path(__file__).resolve().parents[1] / "data" / "photo_examples"
    index = json.loads((folder / "index.json").read_text()) if (folder / "index.json").exists() else []
    out = []
    for entry in index:
        rgb = read_image(folder / f"{entry['id']}.jpg")[..., :3]
        source = f"{entry['package']} {entry['version']}, {entry['licence']}"
        out.append((entry["id"], rgb, source))
    return out


def photo_section(generator_seed: int = 0) -> list[str]:
    """The shipped photo model on the shipped held-out photos: grey | prior segments overlay | posterior
    segments overlay | colorized | 3 samples | ground truth; the test metrics measured when it was built."""
    try:
        model = Colorizer.load()
    except FileNotFoundError as err:
        return [f"<h2>Photos</h2><p class='note'>No shipped photo model: {html.escape(str(err))}</p>"]
    examples = photo_examples()
    generator = torch.Generator().manual_seed(generator_seed)
    heads = ["photo", "grey input", "prior segments P(z|x)", "posterior P(z|x,y)", "colorized"]
    heads += ["sample 1", "sample 2", "sample 3", "ground truth"]

    def cell(image):
        return f"<td>{report.img(report.jpeg_bytes(image), width=120)}</td>"

    rows = []
    for name, rgb, source in examples:
        title = html.escape(name.split("__")[-1].replace("_", " "))
        cells = [f"<td>{title}<br><small>{html.escape(source)}</small></td>", cell(_grey(rgb))]
        cells.append(cell(overlay(rgb, model.segment(rgb))))
        cells.append(cell(overlay(rgb, model.posterior_segment(rgb, rgb))))
        cells.append(cell(model.colorize(rgb)))
        cells += [cell(s) for s in model.sample(rgb, 3, generator=generator)]
        cells.append(cell(rgb))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in heads)
    gallery = f"<table class='gallery'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    scale = model.meta["config"].get("superpixels")
    pooled = (
        f", its prior pooled over the grey image's Felzenszwalb regions of scale {scale:g}" if scale else ""
    )
    note = (
        f"<p class='note'>The shipped photo model ({model.meta.get('parameters', 0):,} parameters, K = "
        f"{model.meta['config']['segments']} segments{pooled}, decoding temperature {model.temperature:g} and "
        f"rebalancing λ = {model.rebalance:g} chosen on val) on photos of its corpus's <b>test split</b>, never seen in training or selection. Segment "
        "overlays: each segment's id colour blended over the photo, boundaries in white; the prior is "
        "argmax P(z|x) from the grey image alone, the posterior argmax P(z|x,y) once the colours are "
        "seen. See MODEL_CARD.md of the model for its data and known failures.</p>"
    )
    sections = ["<h2>Photos (shipped photo model, held-out photos)</h2>", note, gallery]
    measured = model.meta.get("test_metrics")
    if measured:
        keys = ["nll_nats_per_pixel", "auc", "psnr", "colorfulness"]
        rows = [[kind, *[round(float(m[k]), 4) for k in keys]] for kind, m in measured.items()]
        truth = next(iter(measured.values()))["colorfulness_ground_truth"]
        rows.append(["ground truth", "", "", "", float(truth)])
        sections += [
            f"<p class='note'>Test split of the photo corpus ({next(iter(measured.values()))['num_images']}"
            " photos, 128-px centre views), measured by scripts/colorize_models_build.sh when the model "
            "was built (the demo does not re-measure it: the corpus is not shipped).</p>",
            report.table(["model", "NLL nats/pixel", "AuC", "PSNR dB", "colourfulness"], rows),
        ]
    return sections


def _curves(histories: dict[str, list[float]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for kind in ("latent", "per-pixel"):
        axes[0].plot(np.arange(1, len(histories[kind]) + 1), histories[kind], label=kind)
    axes[0].set(xlabel="step", ylabel="NLL (nats / pixel)", title="exact NLL of the training batch")
    axes[0].legend()
    axes[1].plot(np.arange(1, len(histories["regression"]) + 1), histories["regression"], color="C2")
    axes[1].set(xlabel="step", ylabel="MSE of ab / 110", title="regression (L2 loss)")
    return report.figure_bytes(fig)


def run(out: str | Path, steps: int | None = None, batch_size: int = DEMO_BATCH, seed: int = 0) -> dict:
    out = Path(out)
    steps = steps or DEMO_STEPS
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # see train._train_worker
    timings, models, histories = {}, {}, {}
    for kind in ("latent", "per-pixel", "regression"):
        config = TrainConfig(
            model=kind,
            steps=steps,
            batch_size=batch_size,
            out=str(out / kind),
            seed=seed,
            checkpoint_every=max(steps // 3, 1),
        )
        start = time.perf_counter()
        meta = train(config)
        timings[kind] = time.perf_counter() - start
        histories[kind] = meta["history"]
        models[kind] = Colorizer.load(out / kind)
    models["grey"] = grey_baseline()
    test = load_data("twemoji", 32, "test", ABBins(models["latent"].bins.centres))
    metrics = {kind: evaluate(c, test) for kind, c in models.items()}
    for kind in timings:
        metrics[kind]["train_seconds"] = timings[kind]
        metrics[kind]["parameters"] = models[kind].meta["parameters"]
    atomic_write_json(out / "metrics.json", metrics)

    shown = np.linspace(0, len(test) - 1, SHOWN_IMAGES).round().astype(int)
    keys = ["nll_nats_per_pixel", "auc", "psnr", "colorfulness"]
    rows = [
        [kind, *[float(m[k]) for k in keys], m.get("parameters", 0), f"{m.get('train_seconds', 0.0):.1f}"]
        for kind, m in metrics.items()
    ]
    rows.append(["ground truth", "", "", "", float(metrics["latent"]["colorfulness_ground_truth"]), "", ""])
    note = (
        f"<p class='note'>Twemoji (CC-BY 4.0) at 32×32: {len(test)} test images. Every model: {steps} Adam "
        f"steps of {batch_size} images from the train split. NLL is in nats per pixel over the "
        f"{metrics['latent']['num_bins']} "
        "in-gamut ab bins: exact for latent and per-pixel; for regression and grey it is the NLL of a "
        "Gaussian over the bins centred on the prediction (variance = training MSE). AuC: cumulative "
        "share of pixels within ab distance 0–150 (Zhang et al. 2016). Colourfulness: Hasler–Süsstrunk.</p>"
    )
    story = (
        "<p class='note'>P(y|x) = Π<sub>p</sub> Σ<sub>k</sub> P(z<sub>p</sub>=k|x) "
        "P(y<sub>p</sub>|z<sub>p</sub>=k,x). "
        "The prior column shows argmax<sub>k</sub> P(z<sub>p</sub>=k|x) from the grey image alone; the "
        "posterior column the exact argmax<sub>k</sub> P(z<sub>p</sub>=k|x,y) once the true colours are "
        "seen. Colours of the segment maps are arbitrary ids. Samples share Gumbel noise within a segment, "
        "so a segment takes one colour per sample.</p>"
    )
    report.write(
        out / "report.html",
        "latentvar: colorization with latent segmentation",
        [
            story,
            *photo_section(seed),
            "<h2>Twemoji test images (a short run trained by this demo)</h2>",
            _gallery(models, test.rgba[shown], [test.names[i] for i in shown]),
            "<h2>Metrics (Twemoji test split, the short run)</h2>",
            note,
            report.table(
                ["model", "NLL nats/pixel", "AuC", "PSNR dB", "colourfulness", "parameters", "train s"], rows
            ),
            "<h2>Training curves</h2>",
            report.img(_curves(histories)),
        ],
    )
    return metrics
