"""The line reader and its run settings: `Config` (data shape and training), `LineReader` (a small CNN +
BiGRU giving CTC's per-frame P(z_t|x)), and the checkpoint of a run (`save`, `load`).

Shapes (named axes): b batch, h height (8), w width (columns), t frames (w / 2), c classes (blank + 10).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from einops import rearrange
from torch import Tensor, nn

from latentvar.io import load_checkpoint
from latentvar.runs import Run, module_tensors, save_optimizer, tensors_under

BLANK = 0  # class 0 is the blank; digit d is class d + 1
NUM_CLASSES = 11


@dataclass
class Config:
    steps: int = 1500
    batch: int = 32
    lr: float = 3e-3
    hidden: int = 64
    channels: int = 32
    min_digits: int = 3
    max_digits: int = 10
    max_gap: int = 4
    seed: int = 0
    checkpoint_every: int = 100


class LineReader(nn.Module):
    """pixels (b, 8, w) -> per-frame class log-probabilities (b, t, c), t = ceil(w / 2).

    Two 3×3 convolutions (the second with stride 2 along the width), the 8 rows folded into features,
    a bidirectional GRU and a linear layer: the P(z_t|x) of CTC (Graves et al. 2006)."""

    def __init__(self, channels: int = 32, hidden: int = 64):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=(1, 2), padding=1),
            nn.ReLU(),
        )
        self.rnn = nn.GRU(channels * 8, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, NUM_CLASSES)

    @staticmethod
    def frames(widths: Tensor) -> Tensor:
        return (widths + 1) // 2

    def forward(self, pixels: Tensor) -> Tensor:
        features = rearrange(self.conv(pixels[:, None]), "b ch h t -> b t (ch h)")
        hidden, _ = self.rnn(features)
        return self.out(hidden).log_softmax(-1)


def checkpoint_tensors(
    model: LineReader, optimizer, cfg: Config, step: int, extra: dict | None = None
) -> tuple[dict[str, Tensor], dict]:
    """A run's checkpoint at ``step``: (tensors, metadata)."""
    tensors = module_tensors(model, "model") | save_optimizer(optimizer)
    return tensors, {"kind": "ctc-digits", "config": asdict(cfg), "step": step, **(extra or {})}


def save(run: Path, model: LineReader, optimizer, cfg: Config, step: int, extra: dict | None = None) -> None:
    Run(run).save(*checkpoint_tensors(model, optimizer, cfg, step, extra))


def read(run: Path, tensors: dict[str, Tensor], meta: dict) -> tuple[LineReader, dict]:
    """The LineReader a checkpoint's tensors and metadata describe (``run`` names it in errors)."""
    if meta.get("kind") != "ctc-digits":
        raise ValueError(f"run: {run} holds a {meta.get('kind')!r} checkpoint, not a ctc-digits one")
    cfg = Config(**meta["config"])
    model = LineReader(cfg.channels, cfg.hidden)
    model.load_state_dict(tensors_under(tensors, "model"))
    return model, meta


def load(run: Path) -> tuple[LineReader, dict, dict[str, Tensor]]:
    tensors, meta = load_checkpoint(run)
    return (*read(run, tensors, meta), tensors)
