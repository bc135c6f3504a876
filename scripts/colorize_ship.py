"""Turn trained colorization runs into the models the package ships (see colorize_models_build.sh).

    python scripts/colorize_ship.py photo --corpus data-cache/photos --runs runs/ship
    python scripts/colorize_ship.py twemoji --runs runs/ship

photo: picks the decoding temperature of the latent run on the corpus's **val** split (the highest val
AuC among temperatures whose colourfulness is at least half the ground truth's), then measures the
latent, per-pixel, regression and grey models once on the **test** split; writes the latent run's
best-on-val weights (no optimiser state) with ``temperature``, ``val_temperatures`` and ``test_metrics``
in its JSON to src/latentvar/data/models/photo/.
twemoji: the twemoji run's weights with its Twemoji test metrics to src/latentvar/data/models/twemoji/.
The MODEL_CARD.md files beside them are written by hand from these numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.crops import EVAL_SIDE
from latentvar.colorize.evaluate import evaluate, grey_baseline
from latentvar.colorize.shipped import MODELS_DIR
from latentvar.colorize.train import load_data
from latentvar.io import load_checkpoint, save_checkpoint

TEMPERATURES = (0.2, 0.3, 0.38, 0.5, 0.7, 1.0)


def choose_temperature(colorizer: Colorizer, val) -> tuple[float, list[dict]]:
    rows = []
    for t in TEMPERATURES:
        m = evaluate(colorizer, val, temperature=t)
        rows.append(
            {
                "temperature": t,
                "auc": m["auc"],
                "colorfulness": m["colorfulness"],
                "colorfulness_ground_truth": m["colorfulness_ground_truth"],
            }
        )
    vivid = [r for r in rows if r["colorfulness"] >= 0.5 * r["colorfulness_ground_truth"]]
    best = max(vivid or rows, key=lambda r: r["auc"] if vivid else r["colorfulness"])
    return best["temperature"], rows


def export(run: Path, name: str, extra: dict) -> Path:
    which = "best" if (run / "best.json").exists() else "checkpoint"
    tensors, meta = load_checkpoint(run, name=which)
    weights = {k: v for k, v in tensors.items() if k.startswith("model.")}
    meta = {k: v for k, v in meta.items() if k not in ("history",)}
    meta["config"]["out"] = f"shipped:{name}"
    meta.update(extra)
    out = MODELS_DIR / name
    save_checkpoint(out, weights, meta)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=("photo", "twemoji"))
    ap.add_argument("--corpus", type=Path, default=Path("data-cache/photos"))
    ap.add_argument("--runs", type=Path, default=Path("runs/ship"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.name == "twemoji":
        c = Colorizer.load(args.runs / "twemoji")
        test = load_data("twemoji", 32, "test", c.bins)
        metrics = evaluate(c, test)
        out = export(args.runs / "twemoji", "twemoji", {"test_metrics": {"latent": metrics}})
        print(json.dumps(metrics, indent=1))
        print(f"-> {out}")
        return 0
    latent = Colorizer.load(args.runs / "photo-latent")
    val = load_data(str(args.corpus), EVAL_SIDE, "val", latent.bins)
    temperature, table = choose_temperature(latent, val)
    print(json.dumps(table, indent=1), f"\nchosen temperature {temperature}", file=sys.stderr)
    test = load_data(str(args.corpus), EVAL_SIDE, "test", latent.bins)
    metrics = {"latent": evaluate(latent, test, temperature=temperature)}
    for kind in ("per-pixel", "regression"):
        run = args.runs / f"photo-{kind}"
        if run.exists():
            other = Colorizer.load(run)
            t = choose_temperature(other, val)[0] if kind == "per-pixel" else None
            metrics[kind] = evaluate(other, test, temperature=t)
    metrics["grey"] = evaluate(grey_baseline(EVAL_SIDE, str(args.corpus)), test)
    print(json.dumps(metrics, indent=1))
    extra = {"temperature": temperature, "val_temperatures": table, "test_metrics": metrics}
    print(f"-> {export(args.runs / 'photo-latent', 'photo', extra)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
