"""`latentvar lm ...`: an autoregressive word LSTM on the Brown corpus (the HMM's vocabulary and split)."""

from __future__ import annotations

from pathlib import Path

import typer

from latentvar.cli import flags
from latentvar.cli._output import STDOUT, json_option, say, scalars, where, write_json

app = typer.Typer(help="Autoregressive language models: fit, eval, sample.", no_args_is_help=True)


@app.command("fit")
def fit(
    data: str = typer.Option("brown", help="Bundled data set: brown."),
    out: Path = typer.Option(
        Path("runs/lm"), help="Run directory (checkpoint.safetensors + checkpoint.json)."
    ),
    vocab: int = typer.Option(10000, help="Vocabulary size cap, as for `latentvar hmm fit` (rest -> <unk>)."),
    max_sentences: int = typer.Option(None, help="Use only the first N training sentences."),
    steps: int = typer.Option(2000, help="Adam steps in all (with --resume, counting the checkpoint's)."),
    batch_size: int = typer.Option(32, help="Sentences per step."),
    dim: int = typer.Option(128, help="Word embedding size."),
    hidden: int = typer.Option(256, help="LSTM hidden size."),
    lr: float = typer.Option(3e-3, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Seed."),
    threads: int = typer.Option(1, help="torch threads."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's checkpoint."),
) -> None:
    """Train a word-level LSTM language model on the Brown training split."""
    if data != "brown":
        raise typer.BadParameter(f"expected 'brown', got {data!r}", param_hint="--data")
    flags.counts(
        ("vocab", vocab),
        ("max-sentences", max_sentences),
        ("steps", steps),
        ("batch-size", batch_size),
        ("dim", dim),
        ("hidden", hidden),
        ("threads", threads),
    )
    flags.positive("lr", lr)
    flags.training_out(out, resume)
    from latentvar.apps.pos.lm import fit as run_fit
    from latentvar.runs import rerun_note

    if note := rerun_note(out, resume):
        typer.echo(note, err=True)
    with flags.run_named("run"):
        meta = run_fit(out, vocab, max_sentences, steps, batch_size, dim, hidden, lr, seed, threads)
    say(f"{meta['step']} steps, train nll/token {meta['history'][-1]:.4f}; run: {out}")


@app.command("eval")
def evaluate(
    run: Path = typer.Option(..., help="Run directory written by `latentvar lm fit`."),
    json_path: Path = json_option(STDOUT),
    split: str = typer.Option("test", help="test, train or all."),
    max_sentences: int = typer.Option(None, help="Evaluate on the first N sentences of the split."),
) -> None:
    """Held-out nll_per_token (words, as the HMM's) and perplexity; also nll_per_token_with_eos."""
    flags.run_dir("run", run)
    flags.choice("split", split, ("test", "train", "all"))
    flags.count("max-sentences", max_sentences)
    flags.out_file("json", json_path)
    from latentvar.apps.pos.lm import evaluate as run_eval

    metrics = run_eval(run, split, max_sentences)
    write_json(json_path, metrics)
    say(scalars(metrics, ("nll_per_token", "perplexity")) + where(json_path))


@app.command("sample")
def sample(
    run: Path = typer.Option(..., help="Run directory written by `latentvar lm fit`."),
    n: int = typer.Option(5, "-n", help="Number of sentences."),
    max_length: int = typer.Option(40, help="Stop a sentence after this many words."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Print N sentences sampled from the model on stdout, one a line (each ends at the end-of-sentence
    token): the sentences are this verb's output."""
    flags.run_dir("run", run)
    flags.count("n", n)
    flags.count("max-length", max_length)
    from latentvar.apps.pos.lm import sample_sentences

    for line in sample_sentences(run, n, max_length, seed):
        typer.echo(line)
