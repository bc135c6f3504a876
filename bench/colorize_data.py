"""The streaming photo data path: memory and time to the first step against the collection's size, and the
loader's crops/s against the model's step rate.

    PYTHONPATH=src python bench/colorize_data.py [--sizes 1000 50000] [--repeats 3] [--steps 8]
        [--corpus data-cache/photos] [--workers 0 1 2]

- Scale: a folder of N generated 128×96 JPEGs (under /tmp, made once and kept), `latentvar colorize train
  --data DIR --arch photo --workers 2` in a subprocess with a checkpoint at every step: peak resident memory
  of the training process (``wait4``'s ru_maxrss) and of the whole tree (training process + loader
  workers, proportional set sizes summed, polled every 10 ms), and the wall time from the launch to the first checkpoint
  (step 1) -- median of ``repeats`` launches per N.
- Throughput on the prepared corpus (the shipped photo model's settings: latent, K = 16, width 32,
  batch 64 of 64-px crops): the loader's crops/s with 0, 1, 2 workers (no model), the model's step rate on
  one pre-made batch, and the full training step fed by the loader with 2 workers; ratio = fed / pre-made.
  The corpus is read exactly as before (whole decode, whole Lanczos resize: the same crops); the same
  photos as a list file take the path of any other collection (JPEG draft, resampling the crop's box only).
  Also the in-memory `PhotoCrops` of before: its start-up (decode + pyramid of every photo) and crops/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def make_folder(n: int) -> Path:
    """N small JPEGs in 100 subfolders under /tmp (made once; a file 'done' marks a complete folder)."""
    root = Path(tempfile.gettempdir()) / f"latentvar-bench-photos-{n}"
    if (root / "done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, 96, 128, 3), dtype=np.uint8)
    for i in range(n):
        sub = root / f"{i % 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        img = np.roll(base[i % 8], i % 97, axis=1)
        Image.fromarray(img).save(sub / f"p{i:06d}.jpg", quality=80)
    (root / "done").write_text("")
    return root


def _tree_pss(pid: int) -> int:
    """Proportional set size (shared pages split among their users) of ``pid`` and its descendants, bytes:
    the forked loader workers share the trainer's pages, which a sum of RSS would count once per process."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def launch(folder: Path, out: Path) -> tuple[float, float, float]:
    """(seconds to the first checkpoint, peak RSS MB of the training process, peak tree PSS MB)."""
    shutil.rmtree(out, ignore_errors=True)
    args = [sys.executable, "-m", "latentvar", "colorize", "train", "--data", str(folder), "--arch", "photo"]
    args += ["--steps", "3", "--batch-size", "16", "--workers", "2", "--val-every", "0"]
    args += ["--checkpoint-every", "1", "--width", "8", "--segments", "4", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=ENV, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    first, peak = None, 0
    while True:
        peak = max(peak, _tree_pss(proc.pid))
        if first is None and (out / "checkpoint.json").exists():
            first = time.perf_counter() - t0
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0, f"train failed on {folder}"
    return first, usage.ru_maxrss / 1024, peak / 2**20


def scale_table(sizes: list[int], repeats: int) -> None:
    print("| photos | listing (s) | time to first step (s) | peak RSS, trainer (MB) | peak PSS, tree (MB) |")
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for n in sizes:
        from latentvar.colorize.sources import open_collection

        folder = make_folder(n)
        t0 = time.perf_counter()
        open_collection(folder)
        listing = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            runs = [launch(folder, Path(tmp) / "run") for _ in range(repeats)]
        first, rss, tree = (statistics.median(r[i] for r in runs) for i in range(3))
        rows.append((n, first, rss, tree))
        print(f"| {n:,} | {listing:.2f} | {first:.2f} | {rss:.0f} | {tree:.0f} |", flush=True)
    (n0, f0, r0, t0_), (n1, f1, r1, t1) = rows[0], rows[-1]
    print(
        f"\n{n1:,} vs {n0:,} photos: first step ×{f1 / f0:.2f}, trainer RSS ×{r1 / r0:.3f}, tree ×{t1 / t0_:.3f}"
    )


def _config(corpus: str, workers: int, steps: int):
    from latentvar.colorize.train import TrainConfig

    cfg = TrainConfig(
        data=corpus, segments=16, width=32, size=64, batch_size=64, steps=steps, workers=workers
    )
    cfg.val_every = 0
    cfg.check()
    return cfg


def throughput(corpus: str, workers_list: list[int], steps: int, repeats: int) -> None:
    """Each repeat runs every measurement once, in turn, so that the load of a shared machine falls on all
    of them alike; medians over repeats."""
    from latentvar.colorize.batches import Batches
    from latentvar.colorize.crops import PhotoCrops, split_paths
    from latentvar.colorize.model import build_model
    from latentvar.colorize.quantize import ABBins
    from latentvar.colorize.train import _step

    torch.set_num_threads(1)
    bins, dev = ABBins(), torch.device("cpu")
    torch.manual_seed(0)
    model = build_model("latent", bins.centres, 16, 32, 64, "photo")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = _config(corpus, 2, steps + 1)
    rates: dict[str, list[float]] = {}
    listing = Path(tempfile.mkdtemp()) / "photos.txt"  # the same photos as a plain collection: draft + box
    listing.write_text("\n".join(str(p.resolve()) for p in split_paths(Path(corpus), "train")) + "\n")

    def timed(name: str, work) -> None:
        t0 = time.perf_counter()
        work()
        rates.setdefault(name, []).append(64 * steps / (time.perf_counter() - t0))

    for _ in range(repeats):
        for w in workers_list:
            b = Batches(_config(corpus, w, steps + 1), bins, dev)
            b.start(0, 0)
            b(0, 0)  # workers started, first batch made
            timed(f"loader, {w} workers", lambda b=b: [b(s, 0) for s in range(1, steps + 1)])
            b.close()
        b = Batches(_config(str(listing), 2, steps + 1), bins, dev)
        b.start(0, 0)
        b(0, 0)
        timed("loader, 2 workers, as a list file", lambda b=b: [b(s, 0) for s in range(1, steps + 1)])
        b.close()
        b = Batches(cfg, bins, dev)
        batch = b(0, 0)
        timed(
            "model step, pre-made batch", lambda x=batch: [_step(model, opt, x, cfg, s) for s in range(steps)]
        )
        b.start(0, 0)
        _step(model, opt, b(0, 0), cfg, 0)
        timed(
            "model step fed by the loader, 2 workers",
            lambda b=b: [_step(model, opt, b(s, 0), cfg, s) for s in range(1, steps + 1)],
        )
        b.close()
    print("| what | crops/s (median) | runs |")
    print("|---|---:|---|")
    for name, r in rates.items():
        print(f"| {name} | {statistics.median(r):.0f} | {', '.join(f'{x:.0f}' for x in r)} |")
    p, f = (
        statistics.median(rates[k])
        for k in ("model step, pre-made batch", "model step fed by the loader, 2 workers")
    )
    print(f"\nfed / pre-made = {f / p:.2f}")
    t0 = time.perf_counter()
    old = PhotoCrops(split_paths(Path(corpus), "train"), 64)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(steps):
        old.batch(0, s, 64)
    rate = 64 * steps / (time.perf_counter() - t0)
    print(
        f"before: in-memory PhotoCrops, {rate:.0f} crops/s after a start-up of {built:.1f} s for {len(old)} photos"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 50000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--corpus", default="data-cache/photos")
    ap.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2])
    args = ap.parse_args()
    if args.sizes:
        scale_table(args.sizes, args.repeats)
    if args.corpus and Path(args.corpus, "manifest.json").is_file():
        print()
        throughput(args.corpus, args.workers, args.steps, args.repeats)


if __name__ == "__main__":
    main()
