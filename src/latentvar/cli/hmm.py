"""`latentvar hmm ...`: HMMs on the Brown corpus -- fit (EM or neural emissions), eval, supervised, report."""

from __future__ import annotations

from pathlib import Path

import typer

from latentvar.cli import flags
from latentvar.cli._output import STDOUT, json_option, say, scalars, where, write_json

app = typer.Typer(help="Hidden Markov models on real text: fit, eval, report.", no_args_is_help=True)


def _check_data(data: str) -> None:
    if data != "brown":
        raise typer.BadParameter(
            f"expected 'brown' (the bundled tagged Brown corpus), got {data!r}", param_hint="--data"
        )


@app.command("fit")
def fit(
    data: str = typer.Option("brown", help="Bundled data set: brown."),
    states: int = typer.Option(45, "--states", "-k", help="Number of hidden states K."),
    emission: str = typer.Option(
        "categorical", help="categorical (Baum-Welch) or neural (char-CNN, exact marginal)."
    ),
    out: Path = typer.Option(
        Path("runs/hmm"), help="Run directory (checkpoint.safetensors + checkpoint.json)."
    ),
    vocab: int = typer.Option(
        10000, help="Vocabulary size cap (most frequent training words; the rest -> <unk>)."
    ),
    max_sentences: int = typer.Option(None, help="Use only the first N training sentences."),
    iters: int = typer.Option(
        50, help="EM iterations / gradient epochs in all (with --resume, counting the checkpoint's)."
    ),
    batch_tokens: int = typer.Option(8000, help="Padded tokens per minibatch for gradient training."),
    lr: float = typer.Option(0.01, help="Adam learning rate (neural emissions)."),
    seed: int = typer.Option(0, help="Seed of the random initialisation."),
    threads: int = typer.Option(1, help="torch threads."),
    features: str = typer.Option(
        "chars",
        help="Neural emissions' word vectors: chars (character CNN), ngrams (identity, suffix, prefix and "
        "shape features; cheap enough for the whole training vocabulary) or affixes (ngrams without the "
        "identity of words longer than 3 letters).",
    ),
    init: str = typer.Option(
        "random",
        help="Starting point: random, or clusters (type-level clusters of the training words by their "
        "left/right neighbours; the HMM starts with one state per cluster).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's checkpoint (same settings)."),
) -> None:
    """Fit an HMM to the Brown training split (unsupervised: tags are never seen)."""
    _check_data(data)
    if emission not in ("categorical", "neural"):
        raise typer.BadParameter(f"expected categorical or neural, got {emission!r}", param_hint="--emission")
    if features not in ("chars", "ngrams", "affixes"):
        raise typer.BadParameter(
            f"expected chars, ngrams or affixes, got {features!r}", param_hint="--features"
        )
    if init not in ("random", "clusters"):
        raise typer.BadParameter(f"expected random or clusters, got {init!r}", param_hint="--init")
    flags.counts(
        ("states", states),
        ("vocab", vocab),
        ("max-sentences", max_sentences),
        ("iters", iters),
        ("batch-tokens", batch_tokens),
        ("threads", threads),
    )
    flags.positive("lr", lr)
    flags.training_out(out, resume)
    from latentvar.apps.pos.train import fit as run_fit
    from latentvar.runs import rerun_note

    if note := rerun_note(out, resume):
        typer.echo(note, err=True)
    with flags.run_named("run"):
        meta = run_fit(
            out,
            states,
            emission,
            vocab,
            max_sentences,
            iters,
            batch_tokens,
            lr,
            seed,
            threads,
            features,
            init,
        )
    say(f"{meta['iteration']} iterations, train log-likelihood/token {meta['history'][-1]:.4f}; run: {out}")


@app.command("eval")
def evaluate(
    run: Path = typer.Option(..., help="Run directory written by `latentvar hmm fit`."),
    json_path: Path = json_option(STDOUT),
    split: str = typer.Option("test", help="test, train or all."),
    max_sentences: int = typer.Option(None, help="Evaluate on the first N sentences of the split."),
) -> None:
    """Viterbi states vs gold tags (many_to_one, v_measure) and held-out nll_per_token / perplexity."""
    flags.run_dir("run", run)
    flags.choice("split", split, ("test", "train", "all"))
    flags.count("max-sentences", max_sentences)
    flags.out_file("json", json_path)
    from latentvar.apps.pos.evaluate import evaluate as run_eval

    metrics = run_eval(run, split, max_sentences)
    write_json(json_path, metrics)
    say(scalars(metrics, ("many_to_one", "v_measure", "nll_per_token", "perplexity")) + where(json_path))


@app.command("supervised")
def supervised(
    data: str = typer.Option("brown", help="Bundled data set: brown."),
    out: Path = typer.Option(Path("runs/hmm-supervised"), help="Writes OUT/supervised.json."),
    vocab: int = typer.Option(None, help="Vocabulary size cap (default: every training word seen twice)."),
    json_path: Path = json_option(STDOUT, "the metrics (as OUT/supervised.json)"),
) -> None:
    """The sanity check: a bigram HMM tagger from training counts; Viterbi tag accuracy on the test split."""
    _check_data(data)
    flags.count("vocab", vocab)
    flags.out_dir("out", out)
    flags.out_file("json", json_path)
    from latentvar.apps.pos.evaluate import supervised as run_supervised

    metrics = run_supervised(vocab, out)
    write_json(json_path, metrics)
    say(scalars(metrics, ("accuracy", "accuracy_coarse")) + f"; {out / 'supervised.json'}" + where(json_path))


@app.command("report")
def report(
    run: Path = typer.Option(..., help="HMM run directory."),
    lm: Path = typer.Option(
        None, help="An `latentvar lm fit` run, to put its samples and perplexity beside."
    ),
    extra: list[Path] = typer.Option(
        [], help="More HMM runs to tabulate (e.g. the EM run beside the neural one)."
    ),
    out: Path = typer.Option(None, help="HTML file (default RUN/report.html)."),
) -> None:
    """HTML report: top words per state, state/tag confusion, sampled sentences from the HMM and the LM."""
    flags.run_dir("run", run)
    flags.run_dir("lm", lm)
    for path in extra:
        flags.run_dir("extra", path)
    flags.out_file("out", out)
    from latentvar.apps.pos.report import write_report

    path = write_report(run, lm, extra, out or run / "report.html")
    say(f"report: {path}")
