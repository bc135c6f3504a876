"""The run harness every training loop shares (issue 12, item 3): a run folder with one checkpoint, one
meaning of ``--resume``, batches drawn from (seed, step), and the progress bar at the resumed step.

A run is a folder holding ``checkpoint.safetensors``: the tensors, with the metadata (config, step,
history) as JSON in its header, replaced in one atomic write (`latentvar.io.save_checkpoint`; the
``checkpoint.json`` beside it is a readable copy). Each application's loop stays explicit; `Run` owns only
what they all repeat:

    run = Run(out, resume)
    saved = run.load()                  # None: start afresh; else .step, .tensors, .meta
    for step in run.progress(start, steps, "lm"):
        batch = data[torch.randint(n, (b,), generator=step_generator(seed, step))]
        ...
        run.save(module_tensors(net, "net") | save_optimizer(opt), meta)

Tensor prefixes are fixed: a module's state under ``<name>.`` (``model.``, ``net.``, ``encoder.`` ...), the
optimiser's under ``optimizer.`` or ``optimizer.<name>.`` when a run has several (the generator's
``main``, ``enc`` and ``disc``), the global torch RNG state under ``rng``. Loading also accepts the
optimiser prefixes older runs used (``opt.`` for `lm fit`, ``optim.`` for `ctc train`, ``opt_<name>.`` for
`generator train`), so their checkpoints still resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentvar.io import (
    load_checkpoint,
    load_optimizer_tensors,
    optimizer_tensors,
    remove_stale_temporaries,
    save_checkpoint,
)
from latentvar.progress import progress

NAME = "checkpoint"
KEPT_ALSO = ("best",)  # other checkpoints a run folder holds (colorize train's best-on-val)
PREFIX = "optimizer"
LEGACY_PREFIXES = ("optim", "opt")  # before issue 12: ctc train, lm fit
RNG = "rng"


@dataclass
class Checkpoint:
    """What `Run.load` found: the step reached (under the run's ``step_key``), tensors and metadata."""

    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict


class Run:
    """A training run's folder ``out``. ``resume``: continue its checkpoint if there is one (a run with
    nothing saved yet starts afresh, so ``--resume`` is safe on a first call); without it a run starts
    afresh and its first save replaces what was there. ``step_key``: the metadata key counting progress
    (``step``; `hmm fit` counts ``iteration``)."""

    def __init__(self, out: str | Path, resume: bool = False, step_key: str = "step"):
        self.out = Path(out)
        self.resume = resume
        self.step_key = step_key

    @property
    def path(self) -> Path:
        return self.out / f"{NAME}.safetensors"

    @property
    def exists(self) -> bool:
        """Whether the folder holds a checkpoint (its header holds the metadata, so the .json copy, written
        after it, need not exist yet)."""
        return self.path.exists()

    def load(self) -> Checkpoint | None:
        """The checkpoint to continue, or None when the run starts afresh (not resuming, or nothing saved).
        Called as a run starts, so it also removes the temporary files a killed checkpoint write left --
        in the process that writes the checkpoints only (not in another rank of a distributed run, which
        would delete rank 0's write in progress)."""
        if self.out.is_dir() and _writes_checkpoints():
            for name in (NAME, *KEPT_ALSO):
                remove_stale_temporaries(self.out, name)
        if not (self.resume and self.exists):
            return None
        tensors, meta = load_checkpoint(self.out, NAME)
        return Checkpoint(int(meta.get(self.step_key, 0)), tensors, meta)

    def save(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Replace the checkpoint in one atomic write; ``meta`` holds the run's ``step_key``."""
        if self.step_key not in meta:
            raise ValueError(f"meta: expected the run's step count under {self.step_key!r}")
        save_checkpoint(self.out, tensors, meta, NAME)

    def progress(self, start: int, total: int, desc: str, **kw):
        """A bar over ``range(start, total)`` that starts at ``start`` out of the whole run's ``total``."""
        return progress(range(start, total), desc=desc, total=total, initial=start, **kw)

    def check_settings(
        self, saved: dict, wanted: dict[str, tuple[str, Any]], defaults: dict | None = None
    ) -> None:
        """Refuse to continue a run with settings that define a different model: ``wanted`` maps a metadata
        key to (its flag, the value asked for); runs from before a setting existed had ``defaults[key]``."""
        for key, (flag, value) in wanted.items():
            was = saved.get(key, (defaults or {}).get(key))
            if was != value:
                raise ValueError(
                    f"{flag}: {self.out} was fitted with {was!r}, got {value!r}; resume with the same "
                    "settings or choose a new --out"
                )


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step (or epoch) ``step``'s batch: a pure function of (seed, step), so a resumed run
    draws exactly the batches an unbroken one would (reseeding once at the resume step would not)."""
    return torch.Generator().manual_seed((seed * 2**32 + step) % 2**64)


def module_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A module's state dict under ``prefix.``."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def tensors_under(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under ``prefix.``, with the prefix taken off (a state dict to load)."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def rng_tensors() -> dict[str, torch.Tensor]:
    """The global torch RNG state (dropout, augmentation, noise draws), to save with a checkpoint."""
    return {RNG: torch.get_rng_state()}


def restore_rng(tensors: dict[str, torch.Tensor]) -> bool:
    """Restore the global torch RNG state a checkpoint holds; False for checkpoints without one."""
    if RNG not in tensors:
        return False
    torch.set_rng_state(tensors[RNG])
    return True


def optimizer_prefix(name: str | None = None) -> str:
    """``optimizer`` for a run's one optimiser, ``optimizer.<name>`` for one of several."""
    return PREFIX if name is None else f"{PREFIX}.{name}"


def save_optimizer(optimizer: torch.optim.Optimizer, name: str | None = None) -> dict[str, torch.Tensor]:
    """The optimiser's state as checkpoint tensors under `optimizer_prefix` (name)."""
    return optimizer_tensors(optimizer, optimizer_prefix(name))


def load_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], name: str | None = None
) -> str | None:
    """Restore ``optimizer`` from a checkpoint's tensors, under the current prefix or, for older runs, a
    legacy one; returns the prefix found, or None when the checkpoint holds no state for it (the optimiser
    then starts afresh, as a new one would)."""
    candidates = [optimizer_prefix(name), *(LEGACY_PREFIXES if name is None else (f"opt_{name}",))]
    for prefix in candidates:
        if any(k.startswith(prefix + ".") for k in tensors):
            load_optimizer_tensors(optimizer, tensors, prefix)
            return prefix
    return None


def rerun_note(out: Path, resume: bool) -> str | None:
    """``--resume`` continues OUT's checkpoint, for every training verb. `hmm fit` and `lm fit` used to
    resume on any re-run with the same OUT, and scripts and docs rely on that, so a re-run without
    ``--resume`` still continues the checkpoint: this is the deprecation note to print on stderr then (None
    when there is nothing to say)."""
    if resume or not Run(out).exists:
        return None
    return (
        f"note: {out} holds a checkpoint; continuing it. Resuming on a re-run without --resume is "
        "deprecated: pass --resume to continue a run, or choose a new --out"
    )


def _writes_checkpoints() -> bool:
    """Whether this process writes a run's checkpoints: every process but a non-zero rank of a distributed
    run (DDP, torchrun), where rank 0 alone writes them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"
