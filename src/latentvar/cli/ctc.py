"""`latentvar ctc ...`: handwritten digit strings read with CTC (train, eval, align)."""

from __future__ import annotations

from pathlib import Path

import typer

from latentvar.cli import flags
from latentvar.cli._output import STDOUT, json_option, say, scalars, where, write_json

app = typer.Typer(help="CTC as a latent-variable model: train, align, decode.", no_args_is_help=True)


@app.command("train")
def train(
    out: Path = typer.Option(
        Path("runs/ctc"), "--out", help="Run directory: checkpoint (safetensors + JSON)."
    ),
    steps: int = typer.Option(1500, help="Training steps (batches of 32 lines)."),
    seed: int = typer.Option(0, help="Seed of the initialisation and of the training lines."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's checkpoint (after a kill)."),
) -> None:
    """Train a CNN + BiGRU with CTC on lines of 3-10 handwritten digits (sklearn's 8x8 scans)."""
    flags.count("steps", steps)
    flags.out_dir("out", out)
    from latentvar.apps.digits.model import Config
    from latentvar.apps.digits.train import train as run_training

    with flags.run_named("run"):
        summary = run_training(out, Config(steps=steps, seed=seed), resume=resume)
    say(f"trained to step {summary['steps']} in {summary['seconds']:.0f} s; checkpoint in {out}")


@app.command("eval")
def evaluate(
    run: Path = typer.Option(..., "--run", help="Run directory written by `latentvar ctc train`."),
    json_path: Path = json_option(STDOUT, "the metrics (cer, sequence_accuracy, ...)"),
    beam_width: int = typer.Option(1, help="1: greedy decoding; >1: CTC prefix beam search."),
) -> None:
    """Character error rate and sequence accuracy on the held-out test lines (scans never trained on)."""
    flags.run_dir("run", run)
    flags.count("beam-width", beam_width)
    flags.out_file("json", json_path)
    from latentvar.apps.digits.evaluate import evaluate as run_eval

    metrics = run_eval(run, beam_width=beam_width)
    write_json(json_path, metrics)
    say(scalars(metrics, ("cer", "sequence_accuracy", "mean_test_nll_per_line")) + where(json_path))


@app.command("align")
def align(
    run: Path = typer.Option(..., "--run", help="Run directory written by `latentvar ctc train`."),
    out: Path = typer.Option(Path("runs/ctc/align"), "--out", help="Directory for the PNGs and report.html."),
    lines: int = typer.Option(8, help="How many test lines to draw."),
) -> None:
    """Draw alignment posteriors P(z_t|x,y) and forced-alignment spans over test line images."""
    flags.run_dir("run", run)
    flags.count("lines", lines)
    flags.out_dir("out", out)
    from latentvar.apps.digits.report import align as run_align

    paths = run_align(run, out, n_lines=lines)
    say(f"wrote {len(paths)} pictures and {out / 'report.html'}")
