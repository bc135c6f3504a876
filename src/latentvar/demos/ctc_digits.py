"""Handwritten digit strings read by a small CNN + BiGRU trained with latentvar's CTC.

Data: sklearn's bundled 8×8 digits (1,797 real scans, UCI "Optical Recognition of Handwritten Digits"),
split by scan -- a fixed 80/20 permutation -- so that no scan appears in both train and test lines.
A line is 3-10 scans side by side with random gaps of 0-4 blank columns; training lines are drawn afresh
every step from the training scans, the test lines once from the test scans with a fixed seed.

Shapes (named axes): b batch, h height (8), w width (columns), t frames (w / 2), c classes (blank + 10).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from latentvar.ctc import CTC, ctc_loss
from latentvar.io import (
    atomic_write_bytes,
    atomic_write_json,
    load_checkpoint,
    load_optimizer_tensors,
    optimizer_tensors,
    save_checkpoint,
)
from latentvar.progress import progress

BLANK = 0  # class 0 is the blank; digit d is class d + 1
NUM_CLASSES = 11
TEST_FRACTION = 0.2
SPLIT_SEED = 20240501
TEST_LINES_SEED = 7


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


# ----------------------------------------------------------------------------------------------
# data


def split_indices(n: int) -> dict[str, Tensor]:
    """Scan indices of the train and test parts: a fixed permutation, the first 20% for test."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = round(TEST_FRACTION * n)
    return {"train": order[n_test:], "test": order[:n_test]}


def digit_scans() -> dict[str, tuple[Tensor, Tensor]]:
    """{'train': (images (n, 8, 8) in [0, 1], labels (n,)), 'test': ...}, split by scan."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.as_tensor(d.images, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(d.target, dtype=torch.long)
    return {part: (images[idx], labels[idx]) for part, idx in split_indices(len(labels)).items()}


def make_lines(images: Tensor, labels: Tensor, n: int, cfg: Config, generator: torch.Generator):
    """n lines from the given scans: (pixels (b, 8, w) zero-padded, widths (b,), targets (b, l) padded
    with -1 as digits, target lengths (b,), scan indices (b, l) padded with -1)."""
    lines, digits, scans = [], [], []
    for _ in range(n):
        k = int(torch.randint(cfg.min_digits, cfg.max_digits + 1, (), generator=generator))
        idx = torch.randint(0, len(labels), (k,), generator=generator)
        gaps = torch.randint(0, cfg.max_gap + 1, (k + 1,), generator=generator)
        parts = [torch.zeros(8, int(gaps[0]) + 1)]
        for j, i in enumerate(idx.tolist()):
            parts += [images[i], torch.zeros(8, int(gaps[j + 1]))]
        parts.append(torch.zeros(8, 1))
        lines.append(torch.cat(parts, dim=1))
        digits.append(labels[idx])
        scans.append(idx)
    widths = torch.tensor([x.shape[1] for x in lines])
    pixels = torch.zeros(n, 8, int(widths.max()))
    targets = torch.full((n, cfg.max_digits), -1, dtype=torch.long)
    scan_index = torch.full((n, cfg.max_digits), -1, dtype=torch.long)
    for i, (x, y, s) in enumerate(zip(lines, digits, scans, strict=True)):
        pixels[i, :, : x.shape[1]] = x
        targets[i, : len(y)] = y
        scan_index[i, : len(s)] = s
    return pixels, widths, targets, (targets >= 0).sum(-1), scan_index


def test_lines(cfg: Config, n: int = 500):
    images, labels = digit_scans()["test"]
    return make_lines(images, labels, n, cfg, torch.Generator().manual_seed(TEST_LINES_SEED))


# ----------------------------------------------------------------------------------------------
# the model


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


def as_classes(digits: Tensor) -> Tensor:
    """Digits padded with -1 -> CTC classes (digit + 1), padding kept at -1."""
    return torch.where(digits >= 0, digits + 1, -1)


# ----------------------------------------------------------------------------------------------
# training with resume


def save(run: Path, model: LineReader, optimizer, cfg: Config, step: int, extra: dict | None = None) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | optimizer_tensors(optimizer, "optim")
    meta = {"kind": "ctc-digits", "config": asdict(cfg), "step": step, **(extra or {})}
    save_checkpoint(run, tensors, meta)


def load(run: Path) -> tuple[LineReader, dict, dict[str, Tensor]]:
    tensors, meta = load_checkpoint(run)
    if meta.get("kind") != "ctc-digits":
        raise ValueError(f"run: {run} holds a {meta.get('kind')!r} checkpoint, not a ctc-digits one")
    cfg = Config(**meta["config"])
    model = LineReader(cfg.channels, cfg.hidden)
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    return model, meta, tensors


def learning_rate(step: int, cfg: Config) -> float:
    """Linear warm-up over 100 steps, then cosine decay to zero (a function of the step: resumable)."""
    warm = min(1.0, (step + 1) / 100)
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))


def train(run: Path, cfg: Config, resume: bool = False) -> dict:
    """Train (or continue) a LineReader; checkpoints every ``checkpoint_every`` steps. Each step's lines
    come from a generator seeded by (seed, step), so a resumed run sees the same data as an unbroken one."""
    run = Path(run)
    torch.set_num_threads(1)  # small batches: one thread is as fast and leaves the other core free
    torch.manual_seed(cfg.seed)
    model = LineReader(cfg.channels, cfg.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, history = 0, []
    if resume and (run / "checkpoint.json").exists():
        model, meta, tensors = load(run)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        load_optimizer_tensors(optimizer, tensors, "optim")
        start, history = meta["step"], meta.get("history", [])
        cfg = Config(**{**meta["config"], "steps": cfg.steps})  # the saved run's settings; steps may grow
    images, labels = digit_scans()["train"]
    model.train()
    bar = progress(range(start, cfg.steps), desc="ctc train", total=cfg.steps, initial=start)
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
            save(run, model, optimizer, cfg, step + 1, {"history": history})
    summary = {"steps": cfg.steps, "resumed_from": start, "seconds": time.perf_counter() - t0}
    atomic_write_json(run / "train.json", {**summary, "history": history})
    return summary


# ----------------------------------------------------------------------------------------------
# evaluation


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of one unit each)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


@torch.no_grad()
def evaluate(run: Path, beam_width: int = 1, n_lines: int = 500) -> dict:
    """Character error rate (edit distance / reference digits) and sequence accuracy on the test lines."""
    model, meta, _ = load(Path(run))
    cfg = Config(**meta["config"])
    model.eval()
    pixels, widths, digits, lengths, _ = test_lines(cfg, n_lines)
    model_ctc = CTC(model(pixels), LineReader.frames(widths), blank=BLANK)
    decoded = model_ctc.decode(beam_width=beam_width)
    errors, exact = 0, 0
    for i in range(n_lines):
        hyp = (decoded.labels[i, : int(decoded.lengths[i])] - 1).tolist()
        ref = digits[i, : int(lengths[i])].tolist()
        e = edit_distance(hyp, ref)
        errors += e
        exact += e == 0
    test_nll = -model_ctc.log_prob(as_classes(digits), lengths)
    return {
        "cer": errors / int(lengths.sum()),
        "sequence_accuracy": exact / n_lines,
        "num_lines": n_lines,
        "num_digits": int(lengths.sum()),
        "beam_width": beam_width,
        "mean_test_nll_per_line": float(test_nll.mean()),
        "step": meta["step"],
        "split": f"scans {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%}, fixed permutation (seed {SPLIT_SEED})",
    }


# ----------------------------------------------------------------------------------------------
# pictures: alignment posteriors and forced alignments over the line images


def _frame_to_column(frame: float) -> float:
    """Frame t sees columns around 2t (stride 2): its left edge in pixel units."""
    return 2 * frame - 0.5


@torch.no_grad()
def align(run: Path, out: Path, n_lines: int = 8) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latentvar import report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, meta, _ = load(Path(run))
    cfg = Config(**meta["config"])
    model.eval()
    pixels, widths, digits, lengths, _ = test_lines(cfg, n_lines)
    frames = LineReader.frames(widths)
    ctc = CTC(model(pixels), frames, blank=BLANK)
    targets = as_classes(digits)
    posterior = ctc.posterior(targets, lengths)
    marginals = posterior.marginals
    alignment = ctc.forced_align(targets, lengths)
    decoded = ctc.decode()
    paths, sections = [], []
    for i in range(n_lines):
        w, t = int(widths[i]), int(frames[i])
        truth = "".join(str(d) for d in digits[i, : int(lengths[i])].tolist())
        guess = "".join(str(d - 1) for d in decoded.labels[i, : int(decoded.lengths[i])].tolist())
        fig, (ax_img, ax_post) = plt.subplots(
            2, 1, figsize=(max(6.0, w * 0.12), 4.2), gridspec_kw={"height_ratios": [1, 1.4]}, sharex=True
        )
        ax_img.imshow(
            pixels[i, :, :w].numpy(), cmap="gray_r", aspect="auto", extent=(-0.5, w - 0.5, 7.5, -0.5)
        )
        for j in range(int(lengths[i])):
            start, end = alignment.spans[i, j].tolist()
            left, right = _frame_to_column(start), _frame_to_column(end)
            ax_img.axvspan(left, right, color=f"C{j % 10}", alpha=0.25)
            ax_img.axvline(left, color=f"C{j % 10}", lw=1)
            ax_img.text(
                (left + right) / 2, -1.0, str(int(digits[i, j])), ha="center", va="bottom", fontsize=9
            )
        ax_img.set_yticks([])
        ax_img.set_title(f"truth {truth} · greedy {guess} · forced-alignment spans (shaded)", pad=16)
        heat = marginals[i, :t].T.numpy()
        ax_post.imshow(
            heat,
            aspect="auto",
            cmap="magma",
            origin="lower",
            extent=(-0.5, 2 * t - 0.5, -0.5, NUM_CLASSES - 0.5),
        )
        ax_post.set(
            yticks=range(NUM_CLASSES),
            yticklabels=["∅"] + [str(d) for d in range(10)],
            xlabel="pixel column (frame = 2 columns)",
            ylabel="P(z_t = c | x, y)",
        )
        path = out / f"line_{i:02d}.png"
        png = report.figure_bytes(fig, dpi=110)  # closes the figure
        atomic_write_bytes(path, png)
        paths.append(path)
        sections.append(report.img(png, alt=f"line {i}"))
    metrics = evaluate(run)
    note = (
        "<p class='note'>Each picture: a test line (scans never seen in training) with the forced alignment "
        "of its true digits (shaded spans: the frames CTC assigns to each digit), and below it the "
        "alignment posterior P(z_t = c | x, y) over frames (x) and classes (y; ∅ is the blank), computed "
        "exactly by forward-backward.</p>"
    )
    table = report.table(["metric", "value"], [[k, v] for k, v in metrics.items() if not isinstance(v, str)])
    report.write(out / "report.html", "CTC on handwritten digit strings", [table, note, *sections])
    atomic_write_json(out / "metrics.json", metrics)
    return paths
