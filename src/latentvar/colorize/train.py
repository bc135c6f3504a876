"""Training: one loop for every model (same data, batches, optimiser and budget), checkpoints, resume, DDP.

A run directory holds ``checkpoint.safetensors`` (model + Adam state) and ``checkpoint.json`` (config,
step, loss history), written atomically every ``checkpoint_every`` steps and at the end; ``resume``
continues from it after any kill. Batches are a pure function of (seed, step), so a resumed run sees the
same batches it would have seen. ``devices > 1`` trains with torch.distributed DDP over gloo, one process
per device on this machine: each rank takes its share of every global batch.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from latentvar._checks import check_positive
from latentvar.colorize.images import load_image_folder, rgba_to_lab
from latentvar.colorize.model import MODELS, build_model, parameter_count
from latentvar.colorize.quantize import ABBins
from latentvar.io import load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint
from latentvar.progress import progress


@dataclass
class TrainConfig:
    data: str = "twemoji"
    model: str = "latent"
    segments: int = 8
    size: int = 32
    steps: int = 300
    out: str = "runs/colorize"
    seed: int = 0
    devices: int = 1
    batch_size: int = 128
    lr: float = 3e-3
    width: int = 16
    hidden: int = 64
    checkpoint_every: int = 50

    def check(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: expected one of {MODELS}, got {self.model!r}")
        for name in ("segments", "steps", "devices", "batch_size", "width", "hidden", "checkpoint_every"):
            check_positive(name, getattr(self, name), integer=True)
        if not isinstance(self.size, int) or self.size < 4 or self.size % 4:
            raise ValueError(f"size: expected a positive multiple of 4 (pixels per side), got {self.size!r}")
        if self.batch_size % self.devices:
            raise ValueError(
                f"batch_size: expected a multiple of devices={self.devices}, got {self.batch_size}"
            )
        check_positive("lr", self.lr)


@dataclass
class ColourData:
    """A data set in model form: L (n, h, w), ab (n, h, w, 2), bins y (n, h, w)."""

    L: Tensor
    ab: Tensor
    y: Tensor
    rgba: np.ndarray
    names: list[str]
    num_skipped: int = 0

    def __len__(self) -> int:
        return self.L.shape[0]


def load_rgba(data: str, size: int, split: str) -> tuple[np.ndarray, list[str], int]:
    """(RGBA uint8 (n, size, size, 4), names, number of unreadable files skipped) for 'twemoji' or a folder.

    'twemoji' uses its fixed split; a folder is used whole (``split`` is ignored)."""
    if data == "twemoji":
        from latentvar.data.twemoji import load_twemoji, twemoji_names

        return load_twemoji(split, size), twemoji_names(split), 0
    folder = load_image_folder(data, size)
    if len(folder.images) == 0:
        raise ValueError(f"data: no readable images in {data!r} ({folder.num_skipped} skipped)")
    return folder.images, [str(p) for p in folder.paths], folder.num_skipped


def prepare(rgba: np.ndarray, names: list[str], bins: ABBins, num_skipped: int = 0) -> ColourData:
    L, ab = rgba_to_lab(rgba)
    return ColourData(L, ab, bins.encode(ab), rgba, names, num_skipped)


def load_data(data: str, size: int, split: str, bins: ABBins) -> ColourData:
    rgba, names, skipped = load_rgba(data, size, split)
    return prepare(rgba, names, bins, skipped)


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> Tensor:
    """The global batch of ``step``: a pure function of (seed, step), so resumed runs see the same data."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(n, (batch_size,), generator=g)


# -- checkpoints -----------------------------------------------------------------------------------


def model_tensors(model: nn.Module) -> dict[str, Tensor]:
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def write_checkpoint(out: Path, model: nn.Module, opt, meta: dict) -> None:
    save_checkpoint(out, {**model_tensors(model), **optimizer_tensors(opt)}, meta)


def restore_model(tensors: dict[str, Tensor], meta: dict) -> nn.Module:
    """A model rebuilt from a checkpoint's config and tensors (strict: every tensor must fit)."""
    bins = tensors["model.bin_centres"]
    cfg = meta["config"]
    model = build_model(cfg["model"], bins, cfg["segments"], cfg["width"], cfg["hidden"])
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True)
    return model


# -- the loop --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(config: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict:
    """Train (or resume) a run; returns the final checkpoint's metadata."""
    config.check()
    out = Path(config.out)
    if config.devices == 1:
        return _train_worker(0, config, resume, show_progress)
    import torch.multiprocessing as mp

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(_free_port())
    mp.spawn(_train_worker, args=(config, resume, show_progress), nprocs=config.devices, join=True)
    return load_checkpoint(out)[1]


def _train_worker(rank: int, config: TrainConfig, resume: bool, show_progress: bool) -> dict:
    distributed = config.devices > 1
    # One intra-op thread per process: these convolutions are too small to gain from more, and on a busy
    # machine extra OpenMP threads cost up to 9x (measured); use --devices N to use N cores.
    torch.set_num_threads(1)
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("gloo", rank=rank, world_size=config.devices)
    try:
        return _train_loop(rank, config, resume, show_progress and rank == 0)
    finally:
        if distributed:
            dist.destroy_process_group()


def _train_loop(rank: int, config: TrainConfig, resume: bool, show_progress: bool) -> dict:
    out = Path(config.out)
    bins = ABBins()
    data = load_data(config.data, config.size, "train", bins)
    torch.manual_seed(config.seed)
    model = build_model(config.model, bins.centres, config.segments, config.width, config.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, history, elapsed = 0, [], 0.0
    if resume and (out / "checkpoint.json").exists():
        tensors, meta = load_checkpoint(out)
        if meta["config"]["model"] != config.model:
            raise ValueError(
                f"resume: the run in {out} trains {meta['config']['model']!r}, not {config.model!r}"
            )
        model.load_state_dict(
            {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        )
        load_optimizer_tensors(opt, tensors)
        step, history, elapsed = meta["step"], meta["history"], meta.get("train_seconds", 0.0)
    net = model
    if config.devices > 1:
        net = nn.parallel.DistributedDataParallel(model)
    meta = {}
    per_rank = config.batch_size // config.devices
    bar = progress(range(step, config.steps), desc=f"train {config.model}", disable=not show_progress)
    t0 = time.perf_counter()
    for step in bar:
        idx = batch_indices(config.seed, step, len(data), config.batch_size)[
            rank * per_rank : (rank + 1) * per_rank
        ]
        loss = net(data.L[idx], data.y[idx], data.ab[idx])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training diverged at step {step} (loss {value}); lower lr={config.lr}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(value)
        bar.set_postfix(loss=f"{value:.4f}")
        done = step + 1
        if rank == 0 and (done % config.checkpoint_every == 0 or done == config.steps):
            if done == config.steps:
                _finish(model, data)
            meta = _meta(config, model, data, done, history, elapsed + time.perf_counter() - t0, bins)
            write_checkpoint(out, model, opt, meta)
    if not meta:  # nothing left to do (a resumed, finished run)
        meta = load_checkpoint(out)[1] if (out / "checkpoint.json").exists() else {}
    return meta


def _finish(model: nn.Module, data: ColourData) -> None:
    """Post-training fits: the regression model's residual variance (σ² of its Gaussian over bins)."""
    if model.kind != "regression":
        return
    with torch.no_grad():
        sub = slice(0, min(len(data), 2048))
        resid = model.predict_ab(data.L[sub]) - data.ab[sub]
        model.gaussian.residual_var.copy_(resid.pow(2).mean((0, 1, 2)).clamp_min(1.0))


def _meta(config, model, data, step, history, seconds, bins) -> dict:
    return {
        "kind": f"colorize-{config.model}",
        "config": asdict(config),
        "step": step,
        "history": history,
        "train_seconds": seconds,
        "images_seen": step * config.batch_size,
        "num_train_images": len(data),
        "num_skipped": data.num_skipped,
        "num_bins": bins.num_bins,
        "parameters": parameter_count(model),
    }
