"""Training: one loop for every model (same data, batches, optimiser and budget), checkpoints, resume, DDP.

A run directory holds ``checkpoint.safetensors`` (model + Adam state) and ``checkpoint.json`` (config,
step, loss history), written atomically every ``checkpoint_every`` steps and at the end; ``resume``
continues from it after any kill. Batches are a pure function of (seed, step), so a resumed run sees the
same batches it would have seen.

Data (`batches`): 'twemoji' (32×32 images, used whole) or a folder of small images under the 'emoji' trunk
(centre squares, in memory); or any collection of photos -- a prepared corpus (``manifest.json``, `latentvar
colorize prepare photos`), a folder tree of photos, a text file listing image paths, or WebDataset tar shards
(`sources`): then every step draws random multi-scale crops with flips from its train split, decoded on the
fly by ``workers`` DataLoader processes (`stream`), and every ``val_every`` steps the exact NLL of fixed
val views (and of as many train views, for the train/val gap) and the val AuC of the decoded colours are
measured; the best so far by ``select`` (lowest val NLL, or highest val AuC) is kept as
``best.safetensors`` + ``best.json`` (model selection on val only), and training stops early after
``patience`` checks without improvement.

Scale knobs: ``width`` and ``depth`` of the trunk, ``batch_size`` (global), ``accumulate`` (each rank's
share of a step in that many micro-batches, one optimiser step: the same gradient up to rounding),
``device='cuda'`` with bf16 autocast (``bf16=False`` turns it off), pinned memory and non-blocking copies.

Scale-out: ``devices > 1`` spawns one process per device on this machine; under ``torchrun`` (the
environment names RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) the processes join by env:// rendezvous,
on any number of nodes. Either way DDP runs over gloo (nccl for ``device='cuda'``) and each rank takes its
share of every global batch, so the averaged gradient equals the single-process one.
"""

from __future__ import annotations

import math
import os
import socket
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from latentvar._checks import check_positive
from latentvar.colorize.batches import Batches as _Batches
from latentvar.colorize.batches import Validation as _Validation
from latentvar.colorize.batches import uses_crops
from latentvar.colorize.checkpoint_checks import model_options
from latentvar.colorize.data import (  # noqa: F401 (the data helpers, importable from here as before)
    ColourData,
    batch_indices,
    load_data,
    load_rgba,
    prepare,
    resolve_device,
)
from latentvar.colorize.model import ARCHS, COLOUR_LAWS, MODELS, build_model, parameter_count
from latentvar.colorize.prior import PRIORS, superpixel_scale
from latentvar.colorize.quantize import ABBins
from latentvar.io import load_checkpoint, save_checkpoint
from latentvar.runs import Run, load_optimizer, module_tensors, save_optimizer, tensors_under


@dataclass
class TrainConfig:
    data: str = "twemoji"
    model: str = "latent"
    segments: int = 8
    size: int | None = None  # None: 64 for photo crops, 32 for the emoji trunk
    steps: int = 300
    out: str = "runs/colorize"
    seed: int = 0
    devices: int = 1
    batch_size: int = 128
    lr: float = 3e-3
    width: int = 16
    hidden: int = 64
    checkpoint_every: int = 50
    arch: str | None = None  # 'emoji' or 'photo'; None: 'photo' for a photo corpus, else 'emoji'
    device: str = "cpu"
    val_every: int = 250  # photo corpus: steps between val checks
    patience: int = 0  # photo corpus: stop after this many val checks without improvement (0: never)
    lr_decay: str = "none"  # 'none' or 'cosine' (to 5 % of lr at the last step; a pure function of step)
    select: str = "nll"  # photo corpus: the val score that picks best.*: 'nll' (lowest) or 'auc' (highest)
    # the latent model's segment prior (`colorize.prior`): 'learned' (the network's, smoothed edge-aware in
    # ``smooth_steps`` mean-field steps) or 'lightness' (the earlier hand-set quantiser), and the weights of
    # its training terms: balanced use of the K segments, photometric invariance of P(z|x)
    prior: str = "learned"
    smooth_steps: int = 3
    balance: float = 0.5
    invariance: float = 0.25
    confidence: float = 0.5  # the mean per-pixel entropy of P(z|x) (with balance: IIC's mutual information)
    colour_law: str = "linear"  # latent: a segment's colour across L-bins: 'linear', 'levels' or 'global'
    # learned prior: pool its logits over the grey image's Felzenszwalb regions of this scale (0: off)
    superpixels: float = 0.0
    init: str | None = None  # warm start: a run directory or shipped model whose matching weights are loaded
    workers: int = 0  # DataLoader processes decoding photo crops per rank (0: in the training process)
    accumulate: int = 1  # micro-batches per step (gradient accumulation; the balance term is per micro-batch)
    bf16: bool = True  # device 'cuda': bf16 autocast of the forward pass
    val_images: int | None = None  # fixed val subset (None: a corpus's whole val split, else 256)
    depth: int = 0  # photo trunk: extra residual blocks at 1/16 resolution

    def check(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: expected one of {MODELS}, got {self.model!r}")
        for name in ("segments", "steps", "devices", "batch_size", "width", "hidden", "checkpoint_every"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("accumulate", self.accumulate, integer=True)
        if self.val_images is not None:
            check_positive("val_images", self.val_images, integer=True)
        if not isinstance(self.bf16, bool):
            raise ValueError(f"bf16: expected True or False, got {self.bf16!r}")
        for name in ("val_every", "patience", "workers", "depth"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {getattr(self, name)!r}")
        if self.arch is None:
            from latentvar.colorize.sources import is_photo_collection

            self.arch = "photo" if is_photo_collection(self.data) else "emoji"
        if self.arch not in ARCHS:
            raise ValueError(f"arch: expected one of {ARCHS}, got {self.arch!r}")
        if self.depth and self.arch != "photo":
            raise ValueError(f"depth: extra blocks are for the 'photo' trunk, got arch={self.arch!r}")
        if self.size is None:
            self.size = 64 if uses_crops(self) else 32
        multiple = 16 if self.arch == "photo" else 4
        if not isinstance(self.size, int) or self.size < multiple or self.size % multiple:
            raise ValueError(
                f"size: expected a positive multiple of {multiple} (pixels per side), got {self.size!r}"
            )
        if uses_crops(self) and self.size < 64:
            raise ValueError(f"size: photo crops must be at least 64 px, got {self.size}")
        resolve_device(self.device)
        if self.select not in ("nll", "auc"):
            raise ValueError(f"select: expected 'nll' or 'auc', got {self.select!r}")
        if self.lr_decay not in ("none", "cosine"):
            raise ValueError(f"lr_decay: expected 'none' or 'cosine', got {self.lr_decay!r}")
        if self.batch_size % self.devices:
            raise ValueError(
                f"batch_size: expected a multiple of devices={self.devices}, got {self.batch_size}"
            )
        if self.batch_size % (self.devices * self.accumulate):
            raise ValueError(
                f"batch_size: expected a multiple of devices × accumulate = {self.devices * self.accumulate}, "
                f"got {self.batch_size}"
            )
        check_positive("lr", self.lr)
        if self.prior not in PRIORS:
            raise ValueError(f"prior: expected one of {PRIORS}, got {self.prior!r}")
        if not isinstance(self.smooth_steps, int) or not 0 <= self.smooth_steps <= 8:
            raise ValueError(f"smooth_steps: expected an integer from 0 to 8, got {self.smooth_steps!r}")
        if self.colour_law not in COLOUR_LAWS:
            raise ValueError(f"colour_law: expected one of {COLOUR_LAWS}, got {self.colour_law!r}")
        for name in ("balance", "invariance", "confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        if superpixel_scale(self.superpixels) and (self.model != "latent" or self.prior != "learned"):
            raise ValueError(
                "superpixels: pools the learned prior's logits; needs --model latent --prior learned"
            )

    def prior_options(self) -> dict:
        """The latent model's prior settings (`model.build_model`'s ``prior_options``); {} for the rest."""
        if self.model != "latent":
            return {}
        options = {"prior": self.prior}
        if self.colour_law != "linear":
            options["colour_law"] = self.colour_law
        if self.prior == "learned":
            options |= {"smooth_steps": self.smooth_steps, "balance": self.balance}
            options["invariance"] = self.invariance
            if self.confidence:
                options["confidence"] = self.confidence
            if self.superpixels:
                options["superpixels"] = self.superpixels
        return options

    def lr_at(self, step: int) -> float:
        """The learning rate of ``step``: constant, or cosine from lr down to 5 % of it at the last step."""
        if self.lr_decay == "none":
            return self.lr
        return self.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / self.steps)))


# -- checkpoints -----------------------------------------------------------------------------------


def model_tensors(model: nn.Module) -> dict[str, Tensor]:
    return module_tensors(model, "model")


def write_checkpoint(out: Path, model: nn.Module, opt, meta: dict) -> None:
    Run(out).save(model_tensors(model) | save_optimizer(opt), meta)


def restore_model(tensors: dict[str, Tensor], meta: dict) -> nn.Module:
    """A model rebuilt from a checkpoint's config and tensors (strict: every tensor must fit)."""
    bins = tensors["model.bin_centres"]
    cfg = meta["config"]
    arch = cfg.get("arch") or "emoji"  # runs from before the photo trunk are emoji runs
    # runs from before the depth knob have today's trunk; from before the learned prior, the lightness one
    options = model_options(cfg)
    model = build_model(cfg["model"], bins, cfg["segments"], cfg["width"], cfg["hidden"], arch, **options)
    model.load_state_dict(tensors_under(tensors, "model"), strict=True)
    return model


def warm_start(model: nn.Module, init: str) -> list[str]:
    """Load into ``model`` every tensor of the run or shipped model ``init`` whose name and shape match;
    returns the names left at their fresh values (e.g. a new prior's own parameters)."""
    from latentvar.colorize.shipped import resolve_run

    run = resolve_run(init)
    name = "best" if (Path(run) / "best.json").is_file() else "checkpoint"
    tensors = tensors_under(load_checkpoint(run, name=name)[0], "model")
    own = model.state_dict()
    matched = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"init: no tensor of {init!r} fits this model (another kind or size?)")
    model.load_state_dict(matched, strict=False)
    return sorted(set(own) - set(matched))


# -- the loop --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def under_torchrun() -> bool:
    """True when launched by torchrun (or any env:// launcher): RANK and WORLD_SIZE are set."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def train(config: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict:
    """Train (or resume) a run; returns the final checkpoint's metadata."""
    config.check()
    out = Path(config.out)
    if under_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if config.devices not in (1, world):
            raise ValueError(f"devices: torchrun started {world} processes, but devices={config.devices}")
        config.devices = world
        if config.batch_size % world:
            raise ValueError(f"batch_size: expected a multiple of the {world} torchrun processes")
        return _train_worker(int(os.environ["RANK"]), config, resume, show_progress)
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

        backend = "nccl" if config.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=config.devices)
        if config.device == "cuda":
            config.device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
    try:
        meta = _train_loop(rank, config, resume, show_progress and rank == 0)
        if distributed:
            dist.barrier()  # every rank returns after rank 0 has written the last checkpoint
        return meta
    finally:
        if distributed:
            dist.destroy_process_group()


def _score(check: dict, select: str) -> float:
    """The number best.* minimises: val NLL, or minus val AuC (checks from before AuC was kept: +inf)."""
    if select == "nll":
        return check["val"]
    return -check["val_auc"] if "val_auc" in check else math.inf


def _train_loop(rank: int, config: TrainConfig, resume: bool, show_progress: bool) -> dict:
    out = Path(config.out)
    device = resolve_device(config.device)
    bins = ABBins()
    batches = _Batches(config, bins, device, show_progress)
    validate = _Validation(config, bins, device, batches) if rank == 0 else None
    torch.manual_seed(config.seed)
    model = build_model(
        config.model,
        bins.centres,
        config.segments,
        config.width,
        config.hidden,
        config.arch,
        config.depth,
        **config.prior_options(),
    )
    if config.init is not None:
        warm_start(model, config.init)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, history, elapsed, checks = 0, [], 0.0, []
    run = Run(out, resume)
    if (saved := run.load()) is not None:
        run.check_settings(saved.meta["config"], {"model": ("--model", config.model)})
        model.load_state_dict(tensors_under(saved.tensors, "model"))
        load_optimizer(opt, {k: v.to(device) for k, v in saved.tensors.items()})
        step, history, elapsed = saved.step, saved.meta["history"], saved.meta.get("train_seconds", 0.0)
        checks = saved.meta.get("validation", [])
        batches.restore_skipped(saved.meta)
    net = model
    if config.devices > 1:
        net = nn.parallel.DistributedDataParallel(model)
    meta = {}
    bar = run.progress(step, config.steps, f"train {config.model}", disable=not show_progress)
    t0 = time.perf_counter()
    stop = _patience_exhausted(checks, config.patience, config.select)
    batches.start(rank, step)
    try:
        for step in bar:
            if stop:
                break
            for group in opt.param_groups:
                group["lr"] = config.lr_at(step)
            value = _step(net, opt, batches(step, rank), config, step)
            history.append(value)
            bar.set_postfix(loss=f"{value:.4f}")
            done = step + 1
            if validate is not None and validate.sets and done % config.val_every == 0:
                checks.append({"step": done, **validate(model)})
                best = min(checks, key=lambda c: _score(c, config.select))
                if best is checks[-1]:
                    _finish(model, batches)
                    seconds = elapsed + time.perf_counter() - t0
                    meta = _meta(config, model, batches, done, history, seconds, bins, checks)
                    save_checkpoint(out, model_tensors(model), meta, name="best")
                stop = _patience_exhausted(checks, config.patience, config.select)
            last = done == config.steps or stop
            if rank == 0 and (done % config.checkpoint_every == 0 or last):
                if last:
                    _finish(model, batches)
                meta = _meta(
                    config, model, batches, done, history, elapsed + time.perf_counter() - t0, bins, checks
                )
                write_checkpoint(out, model, opt, meta)
            if config.devices > 1 and config.patience:
                stop = _agree(stop, device)
    finally:
        batches.close()
    if not meta:  # nothing left to do (a resumed, finished run)
        meta = last.meta if (last := Run(out, resume=True).load()) is not None else {}
    return meta


def _step(net: nn.Module, opt, batch: tuple[Tensor, Tensor, Tensor], config: TrainConfig, step: int) -> float:
    """One optimiser step on this rank's share, in ``accumulate`` micro-batches (DDP syncs on the last one);
    bf16 autocast on CUDA. Returns the share's mean loss."""
    parts = config.accumulate
    cuda_bf16 = config.bf16 and batch[0].device.type == "cuda"
    opt.zero_grad(set_to_none=True)
    value = 0.0
    for j, micro in enumerate(zip(*(t.chunk(parts) for t in batch), strict=True)):
        sync = net.no_sync() if parts > 1 and j < parts - 1 and hasattr(net, "no_sync") else nullcontext()
        with sync:
            with torch.autocast("cuda", dtype=torch.bfloat16) if cuda_bf16 else nullcontext():
                loss = net(*micro)
            part = float(loss.detach())
            if not math.isfinite(part):
                raise FloatingPointError(
                    f"training diverged at step {step} (loss {part}); lower lr={config.lr}"
                )
            (loss / parts if parts > 1 else loss).backward()
        value += part / parts
    opt.step()
    return value


def _patience_exhausted(checks: list[dict], patience: int, select: str = "nll") -> bool:
    """True when the last ``patience`` val checks were all worse than the best before them."""
    if not patience or len(checks) <= patience:
        return False
    best_at = min(range(len(checks)), key=lambda i: _score(checks[i], select))
    return len(checks) - 1 - best_at >= patience


def _agree(stop: bool, device: torch.device) -> bool:
    """Rank 0 decides early stopping; every rank follows, so all leave the loop at the same step."""
    import torch.distributed as dist

    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def _finish(model: nn.Module, batches: _Batches) -> None:
    """Post-training fits: the regression model's residual variance (σ² of its Gaussian over bins)."""
    if model.kind != "regression":
        return
    with torch.no_grad():
        if batches.sampler is not None:  # the crops of step 0 (rank 0's share)
            L, _, ab = batches(0, 0)
        else:
            sub = slice(0, min(len(batches.data), 2048))
            L, ab = batches.data.L[sub].to(batches.device), batches.data.ab[sub].to(batches.device)
        resid = model.predict_ab(L) - ab
        model.gaussian.residual_var.copy_(resid.pow(2).mean((0, 1, 2)).clamp_min(1.0))


def _meta(config, model, batches, step, history, seconds, bins, checks) -> dict:
    meta = {
        "kind": f"colorize-{config.model}",
        "config": asdict(config),
        "step": step,
        "history": history,
        "train_seconds": seconds,
        "images_seen": step * config.batch_size,
        **batches.meta(),  # num_train_images, num_skipped (and skipped_files)
        "num_bins": bins.num_bins,
        "parameters": parameter_count(model),
    }
    if checks:
        best = min(checks, key=lambda c: _score(c, config.select))
        meta["validation"] = checks
        meta["best"] = {
            "select": config.select,
            "val_auc": best.get("val_auc"),
            "step": best["step"],
            "val_nll": best["val"],
            "train_nll": best["train"],
            "gap": best["val"] - best["train"],
        }
    return meta
