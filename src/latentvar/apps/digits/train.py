"""Training a `LineReader` with latentvar's CTC on freshly drawn lines (`latentvar ctc train`): Adam with
warm-up and cosine decay, a checkpoint every ``checkpoint_every`` steps, resumable.

Shapes (named axes): b batch, h height (8), w width (columns), t frames (w / 2), c classes (blank + 10).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import nn

from latentvar.apps.digits.data import as_classes, digit_scans, make_lines
from latentvar.apps.digits.model import (  # noqa: F401 (load, save: importable from here, as before)
    BLANK,
    Config,
    LineReader,
    checkpoint_tensors,
    load,
    read,
    save,
)
from latentvar.ctc import ctc_loss
from latentvar.io import atomic_write_json
from latentvar.runs import Run, load_optimizer


def learning_rate(step: int, cfg: Config) -> float:
    """Linear warm-up over 100 steps, then cosine decay to zero (a function of the step: resumable)."""
    warm = min(1.0, (step + 1) / 100)
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))


def train(run: Path, cfg: Config, resume: bool = False) -> dict:
    """Train (or continue) a LineReader; checkpoints every ``checkpoint_every`` steps. Each step's lines
    come from a generator seeded by (seed, step), so a resumed run sees the same data as an unbroken one."""
    run = Run(run, resume)
    torch.set_num_threads(1)  # small batches: one thread is as fast and leaves the other core free
    torch.manual_seed(cfg.seed)
    model = LineReader(cfg.channels, cfg.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, history = 0, []
    if (saved := run.load()) is not None:
        model, meta = read(run.out, saved.tensors, saved.meta)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        load_optimizer(optimizer, saved.tensors)
        start, history = saved.step, meta.get("history", [])
        cfg = Config(**{**meta["config"], "steps": cfg.steps})  # the saved run's settings; steps may grow
    images, labels = digit_scans()["train"]
    model.train()
    bar = run.progress(start, cfg.steps, "ctc train")
    running = None
    t0 = time.perf_counter()
    for step in bar:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        pixels, widths, digits, lengths, _ = make_lines(images, labels, cfg.batch, cfg, g)
        log_probs = model(pixels)
        loss = ctc_loss(
            log_probs.transpose(0, 1), as_classes(digits), LineReader.frames(widths), lengths, blank=BLANK
        )
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        optimizer.step()
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        bar.set_postfix(loss=f"{running:.3f}")
        if (step + 1) % 50 == 0:
            history.append({"step": step + 1, "loss": running})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            run.save(*checkpoint_tensors(model, optimizer, cfg, step + 1, {"history": history}))
    summary = {"steps": cfg.steps, "resumed_from": start, "seconds": time.perf_counter() - t0}
    atomic_write_json(run.out / "train.json", {**summary, "history": history})
    return summary
