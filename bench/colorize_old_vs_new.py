"""Colorization before and after the photo work, interleaved in one process (issue 12's old-vs-new rule).

    PYTHONPATH=src python bench/colorize_old_vs_new.py [--rev b17c4b5] [--rounds 15]

The old `colorizer.py` and `model.py` are read from git at REV and imported beside the current ones; both
get the same (untrained, emoji-trunk) weights. Per round: old then new, on a 256x256 RGBA image
(`colorize`, `segment`, `sample(n=3)`; the new Colorizer's reused network pass is cleared first) and 5
latent training steps on 128 Twemoji images, one thread; the ratio is the median over rounds of new / old.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.model import build_model
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.train import load_data
from latentvar.data.twemoji import load_twemoji


def old_module(rev: str, path: str, name: str, tmp: Path):
    file = tmp / f"{name}.py"
    file.write_text(
        subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout
    )
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="b17c4b5")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        old_c = old_module(args.rev, "src/latentvar/colorize/colorizer.py", "old_colorizer", Path(tmp))
        old_m = old_module(args.rev, "src/latentvar/colorize/model.py", "old_model", Path(tmp))
    bins = ABBins()
    torch.manual_seed(0)
    new_model = build_model("latent", bins.centres)
    old_model = old_m.build_model("latent", bins.centres)
    old_model.load_state_dict(new_model.state_dict())
    new = Colorizer(new_model, size=32, meta={"config": {"segments": 8}})
    old = old_c.Colorizer(old_model, size=32, meta={"config": {"segments": 8}})
    small = torch.as_tensor(load_twemoji("test", 32)[:1]).permute(0, 3, 1, 2).float()
    img = np.asarray(
        torch.nn.functional.interpolate(small, size=(256, 256), mode="bilinear")[0]
        .permute(1, 2, 0)
        .round()
        .to(torch.uint8)
    )

    def fresh(call):
        new.__dict__.pop("_last", None)
        return call()

    tasks = {
        "colorize": (lambda: old.colorize(img), lambda: fresh(lambda: new.colorize(img))),
        "segment": (lambda: old.segment(img), lambda: fresh(lambda: new.segment(img))),
        "sample(n=3)": (lambda: old.sample(img, 3), lambda: fresh(lambda: new.sample(img, 3))),
    }
    data = load_data("twemoji", 32, "train", bins)
    opts = {id(m): torch.optim.Adam(m.parameters(), 3e-3) for m in (old_model, new_model)}

    def steps(model, r):
        idx = torch.randint(len(data), (128,), generator=torch.Generator().manual_seed(r))
        for _ in range(5):
            loss = model(data.L[idx], data.y[idx], data.ab[idx])
            opts[id(model)].zero_grad()
            loss.backward()
            opts[id(model)].step()

    print(f"new / old (old = {args.rev}), median over {args.rounds} interleaved rounds, 1 thread")
    for name, (old_call, new_call) in tasks.items():
        ratios = [seconds(new_call) / seconds(old_call) for _ in range(args.rounds + 1)][1:]
        print(f"{name:<22}{statistics.median(ratios):6.2f}   (min {min(ratios):.2f}, max {max(ratios):.2f})")
    ratios = []
    for r in range(args.rounds + 1):
        t_old = seconds(lambda r=r: steps(old_model, r))
        ratios.append(seconds(lambda r=r: steps(new_model, r)) / t_old)
    ratios = ratios[1:]
    print(
        f"{'train step (5 x 128)':<22}{statistics.median(ratios):6.2f}   (min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
