"""A trained latent photo run's kept weights, unchanged, with its learned prior's logits pooled over the grey
image's Felzenszwalb regions (`prior.superpixel_pool`) -- an inference-time setting of the same model, so
that `bench/colorize_choose_k.py` and `scripts/colorize_ship.py` can choose it on val like any run.

    PYTHONPATH=src python scripts/colorize_variant.py photo runs/sp/photo-latent-sp450 --superpixels 450

SRC: a run folder or a shipped model's name. OUT gets checkpoint.safetensors / checkpoint.json (the kept
weights, the config with ``superpixels`` set, ``variant_of``: where they came from). Nothing is trained.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.shipped import resolve_run
from latentvar.io import load_checkpoint, save_checkpoint


def make_variant(src: str, out: Path, superpixels: float) -> Path:
    folder = resolve_run(src)  # a run folder, or a shipped model's by name, as `Colorizer.load` reads it
    which = "best" if (folder / "best.json").exists() else "checkpoint"
    tensors, meta = load_checkpoint(folder, name=which)
    config = dict(meta["config"])
    if config.get("model") != "latent" or config.get("prior") != "learned":
        raise SystemExit(f"{src}: superpixels pool a learned prior; this run is {config.get('model')}, "
                         f"prior {config.get('prior', 'lightness')}")  # fmt: skip
    if superpixels:
        config["superpixels"] = float(superpixels)
    else:
        config.pop("superpixels", None)
    weights = {k: v for k, v in tensors.items() if k.startswith("model.")}
    keep = {k: v for k, v in meta.items() if k not in ("history", "optimizer")}
    save_checkpoint(out, weights, keep | {"config": config, "variant_of": f"{folder} ({which})"})
    Colorizer.load(out)  # it loads (the checks of every checkpoint) before anyone relies on it
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="run folder or shipped model name (e.g. photo)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--superpixels", type=float, required=True, help="Felzenszwalb scale; 0: none")
    args = ap.parse_args()
    print(make_variant(args.src, args.out, args.superpixels))


if __name__ == "__main__":
    main()
