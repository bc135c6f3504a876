"""What the training loop eats: the batches of each step (`Batches`) and the fixed val views (`Validation`).

``Batches(step, rank)`` -> this rank's share of the global batch of ``step`` as (L (b, h, w), y (b, h, w)
int64, ab (b, h, w, 2)) on the device, a pure function of (seed, step):
- 'twemoji', or a folder under the 'emoji' trunk: the images in memory, used whole (`data.load_data`);
- any other collection (a prepared corpus, a folder of photos, a list file, tar shards; `sources`): random
  multi-scale crops decoded on the fly (`stream`), by ``workers`` DataLoader processes (0: this one), which
  run ahead of the loop by two steps each. Unreadable files are skipped, named on stderr and counted.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import Tensor, nn

from latentvar.colorize.crops import EVAL_SIDE, corpus_dir, fixed_views, split_paths
from latentvar.colorize.data import load_data
from latentvar.colorize.images import rgba_to_lab
from latentvar.colorize.metrics import auc
from latentvar.colorize.model import nats_per_pixel
from latentvar.colorize.quantize import ABBins

MAX_LISTED = 1000  # skipped files named in the checkpoint's metadata (all are counted)
VAL_IMAGES = 256  # default fixed val subset of a collection without its own val split


def uses_crops(config) -> bool:
    """Random crops (streamed) for every collection but 'twemoji' and a folder under the 'emoji' trunk."""
    return config.data != "twemoji" and (config.arch == "photo" or corpus_dir(config.data) is not None)


class Batches:
    """The batches of a run (see the module docstring); ``skipped`` names the unreadable files met."""

    def __init__(self, config, bins: ABBins, device: torch.device, show_progress: bool = False):
        self.config, self.bins, self.device = config, bins, device
        self.sampler = self.data = self.collection = None
        self.skipped: dict[str, str] = {}
        self._folder_skipped = 0  # the in-memory path counts (and names nothing)
        self._it, self._next, self._rank = None, None, None
        if uses_crops(config):
            from latentvar.colorize.sources import open_collection
            from latentvar.colorize.stream import CropSampler

            self.collection = open_collection(config.data)
            self.sampler = CropSampler(self.collection, self.collection.train, config.size)
            probe: list = []  # fail now, naming data, when the first files are all unreadable
            self.sampler.first_readable(0, self.sampler.sides[0], probe)
            self.note(probe)
            self.num_images = len(self.sampler)
        else:
            self.data = load_data(config.data, config.size, "train", bins)
            self.num_images = len(self.data)
            self._folder_skipped = self.data.num_skipped

    @property
    def crops(self):  # the photo-crop path is on (kept for callers of the in-memory era)
        return self.sampler

    @property
    def num_skipped(self) -> int:
        return len(self.skipped) + self._folder_skipped

    def restore_skipped(self, meta: dict) -> None:
        """A resumed run keeps counting the files its earlier part skipped."""
        for name, why in meta.get("skipped_files", []):
            self.skipped.setdefault(name, why)

    def note(self, skipped: list[tuple[str, str]]) -> None:
        """Count and log (stderr) the unreadable files of ``skipped`` (name, why) not seen before."""
        for name, why in skipped:
            if name not in self.skipped:
                self.skipped[name] = why
                print(f"warning: data: skipped unreadable file {name} ({why})", file=sys.stderr)

    def _rows(self, rank: int) -> tuple[int, int]:
        c = self.config
        per_rank = c.batch_size // c.devices
        return rank * per_rank, (rank + 1) * per_rank

    def start(self, rank: int, step: int) -> None:
        """Start the loader workers of ``rank`` at ``step`` (the loop then asks for step, step + 1, ...)."""
        if self.sampler is None or step >= self.config.steps:
            return
        from latentvar.colorize.stream import StepCrops, step_loader

        c = self.config
        dataset = StepCrops(self.sampler, self.bins, c.seed, c.batch_size, *self._rows(rank), step, c.steps)
        pin = self.device.type == "cuda"
        self._it, self._next, self._rank = iter(step_loader(dataset, c.workers, pin)), step, rank

    def close(self) -> None:
        """Stop the loader workers (an early stop leaves steps unread)."""
        if self._it is not None and hasattr(self._it, "_shutdown_workers"):
            self._it._shutdown_workers()
        self._it = None

    def __call__(self, step: int, rank: int) -> tuple[Tensor, Tensor, Tensor]:
        c, dev = self.config, self.device
        if self.sampler is None:
            idx = _indices(c.seed, step, len(self.data), c.batch_size)[slice(*self._rows(rank))]
            L, y, ab = self.data.L[idx], self.data.y[idx], self.data.ab[idx]
            return L.to(dev), y.to(dev), ab.to(dev)
        if self._it is not None and step == self._next and rank == self._rank:
            got, L, y, ab, skipped = next(self._it)
            self._next += 1
        else:  # a step out of the loader's order (the regression fit, a test): made here
            from latentvar.colorize.stream import StepCrops

            dataset = StepCrops(self.sampler, self.bins, c.seed, c.batch_size, *self._rows(rank), 0, 0)
            got, L, y, ab, skipped = dataset.make(step)
        assert got == step, (got, step)
        self.note(skipped)
        nb = dev.type == "cuda"
        return L.to(dev, non_blocking=nb), y.to(dev, non_blocking=nb), ab.to(dev, non_blocking=nb)

    def meta(self) -> dict:
        listed = [[k, v] for k, v in sorted(self.skipped.items())[:MAX_LISTED]] if self.sampler else []
        return {"num_train_images": self.num_images, "num_skipped": self.num_skipped} | (
            {"skipped_files": listed} if listed else {}
        )


def _indices(seed: int, step: int, n: int, batch_size: int) -> Tensor:
    from latentvar.colorize.data import batch_indices

    return batch_indices(seed, step, n, batch_size)


def _views(collection, indices: np.ndarray, side: int, skipped: list[str]) -> np.ndarray:
    """Fixed centre views (short side ``side``) of the readable files among ``indices``; the others are
    named in ``skipped`` as (name, why)."""
    from latentvar.colorize.stream import read_rgb_for_side

    out = []
    for i in indices:
        try:
            img = read_rgb_for_side(collection.source(int(i)), side)
        except (ValueError, OSError, SyntaxError) as err:
            skipped.append((collection.label(int(i)), str(err)))
            continue
        top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        out.append(img[top : top + side, left : left + side])
    return np.stack(out) if out else np.zeros((0, side, side, 3), np.uint8)


def _spread(indices: np.ndarray, k: int) -> np.ndarray:
    """``k`` of ``indices`` evenly spaced (all when there are no more than k)."""
    if len(indices) <= k:
        return indices
    return indices[np.linspace(0, len(indices) - 1, k).round().astype(int)]


class Validation:
    """Exact NLL (nats/pixel) on fixed val views and on as many train views (the gap), and the val AuC of
    the decoded colours (annealed mean at T = 0.38, or the point prediction).

    A prepared corpus: every val photo (or ``val_images`` of them, evenly spaced); any other collection of
    photos: ``val_images`` (default `VAL_IMAGES`) evenly spaced files of its hash val split -- a fixed subset,
    so memory and time per check do not grow with the collection."""

    def __init__(self, config, bins: ABBins, device: torch.device, batches: Batches | None = None):
        self.sets = {}
        if config.val_every == 0 or not uses_crops(config):
            return
        root = corpus_dir(config.data)
        limit = config.val_images
        if root is not None and limit is None:  # as before: the whole val split
            val = split_paths(root, "val")
            train_paths = split_paths(root, "train")
            pick = np.linspace(0, len(train_paths) - 1, min(len(val), len(train_paths))).round().astype(int)
            views = {"val": fixed_views(val, EVAL_SIDE), "train": fixed_views([train_paths[i] for i in pick])}
        else:
            coll, skipped = batches.collection, []
            views = {"val": _views(coll, _spread(coll.val, limit or VAL_IMAGES), EVAL_SIDE, skipped)}
            views["train"] = _views(coll, _spread(coll.train, len(views["val"])), EVAL_SIDE, skipped)
            batches.note(skipped)
        if len(views["val"]) == 0:
            return
        for name, rgb in views.items():
            L, ab = rgba_to_lab(rgb)
            self.sets[name] = (L.to(device), bins.encode(ab).to(device), ab)
        self.bins = ABBins(bins.centres.to(device))

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        out = {}
        for name, (L, y, ab) in self.sets.items():
            total, decoded = 0.0, []
            for i in range(0, len(L), 16):
                logp = model.log_probs(L[i : i + 16])
                total += float(nats_per_pixel(logp, y[i : i + 16])) * y[i : i + 16].numel()
                if name == "val":
                    point = model.kind == "regression"
                    decoded.append(
                        model.predict_ab(L[i : i + 16]) if point else self.bins.annealed_mean(logp)
                    )
            out[name] = total / y.numel()
            if decoded:
                out["val_auc"] = auc(torch.cat(decoded).cpu(), ab)
        model.train()
        return out
