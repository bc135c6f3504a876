"""Pictures of what CTC infers on test lines (`latentvar ctc align`): the alignment posterior P(z_t|x, y)
and the forced-alignment spans over each line image, with the test metrics, in OUT/report.html.

Shapes (named axes): b batch, h height (8), w width (columns), t frames (w / 2), c classes (blank + 10).
"""

from __future__ import annotations

from pathlib import Path

import torch

from latentvar.apps.digits.data import as_classes, test_lines
from latentvar.apps.digits.evaluate import evaluate
from latentvar.apps.digits.model import BLANK, NUM_CLASSES, Config, LineReader, load
from latentvar.ctc import CTC
from latentvar.io import atomic_write_bytes, atomic_write_json
from latentvar.progress import progress


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
    for i in progress(range(n_lines), desc="align"):
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
