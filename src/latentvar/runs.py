"""What every training loop shares (issue 12, item 3): one optimiser-state prefix in checkpoints, and one
meaning of ``--resume``.

Every loop saves its optimiser's state under ``optimizer.`` (`latentvar.io.optimizer_tensors`' default),
or ``optimizer.<name>.`` when a run has several (the generator's ``main``, ``enc`` and ``disc``).
Loading also accepts the prefixes older runs used (``opt.`` for `lm fit`, ``optim.`` for `ctc train`,
``opt_<name>.`` for `generator train`), so their checkpoints still resume.
"""

from __future__ import annotations

from pathlib import Path

import torch

from latentvar.io import load_optimizer_tensors, optimizer_tensors

PREFIX = "optimizer"
LEGACY_PREFIXES = ("optim", "opt")  # before issue 12: ctc train, lm fit


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
    if resume or not (Path(out) / "checkpoint.safetensors").exists():
        return None
    return (
        f"note: {out} holds a checkpoint; continuing it. Resuming on a re-run without --resume is "
        "deprecated: pass --resume to continue a run, or choose a new --out"
    )
