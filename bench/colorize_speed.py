"""Colorization speed: training images/s at 32x32 and the time to colorize a 256x256 image.

    PYTHONPATH=src python bench/colorize_speed.py [--repeats 5] [--steps 10] [--ddp]

Training: one optimiser step on a batch of 128 Twemoji images (32x32), one intra-op thread (as
`latentvar colorize train` runs), median over ``repeats`` runs of ``steps`` steps, for the latent model,
the per-pixel classifier and the L2 regression -- the last is the reference (same trunk, no latent, no
Q-way softmax), timed in the same process. ``--ddp`` adds `train(devices=2)`: two processes over gloo.
Inference: `Colorizer.colorize` / `segment` / `sample(n=3)` on a 256x256 RGBA image, median of 20.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.model import build_model, parameter_count
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.train import TrainConfig, load_data, train
from latentvar.data.twemoji import load_twemoji


def step_rate(kind: str, data, batch: int, steps: int, repeats: int) -> tuple[float, int]:
    torch.manual_seed(0)
    model = build_model(kind, ABBins().centres)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rates = []
    for r in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        for s in range(steps):
            idx = torch.randint(len(data), (batch,), generator=torch.Generator().manual_seed(r * 1000 + s))
            loss = model(data.L[idx], data.y[idx], data.ab[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if r:
            rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates), parameter_count(model)


def ddp_rate(batch: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        meta = train(
            TrainConfig(
                model="latent", steps=steps, batch_size=batch, devices=2, out=tmp, checkpoint_every=steps
            ),
            show_progress=False,
        )
    return steps * batch / meta["train_seconds"]


def median_ms(call, repeats: int = 20) -> float:
    """Median wall time of ``call()`` in ms over ``repeats`` runs, after one warm-up run."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--ddp", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_data("twemoji", 32, "train", ABBins())
    rows = {
        kind: step_rate(kind, data, args.batch, args.steps, args.repeats)
        for kind in ("regression", "latent", "per-pixel")
    }
    ref = rows["regression"][0]
    print(f"training, 32x32, batch {args.batch}, 1 thread, median of {args.repeats} x {args.steps} steps")
    print(f"{'model':<12}{'parameters':>12}{'images/s':>12}{'vs regression':>15}")
    for kind, (rate, params) in rows.items():
        print(f"{kind:<12}{params:>12,}{rate:>12.0f}{rate / ref:>15.2f}")
    if args.ddp:
        print(
            f"{'latent DDP x2':<12}{'':>12}"
            f"{ddp_rate(args.batch, 3 * args.steps):>12.0f}   (2 processes, gloo)"
        )

    model = build_model("latent", ABBins().centres)
    colorizer = Colorizer(model, size=32, meta={"config": {"segments": 8}})
    image = np.asarray(
        torch.nn.functional.interpolate(
            torch.as_tensor(load_twemoji("test", 32)[:1]).permute(0, 3, 1, 2).float(),
            size=(256, 256),
            mode="bilinear",
        )[0]
        .permute(1, 2, 0)
        .round()
        .to(torch.uint8)
    )
    print("\n256x256 RGBA image, latent model (network at 32x32, ab upsampled), 1 thread, median of 20")
    for what in ("colorize", "segment", "sample(n=3)"):
        call = {
            "colorize": lambda: colorizer.colorize(image),
            "segment": lambda: colorizer.segment(image),
            "sample(n=3)": lambda: colorizer.sample(image, 3),
        }[what]
        print(f"{what:<14}{median_ms(call):8.1f} ms")


if __name__ == "__main__":
    main()
