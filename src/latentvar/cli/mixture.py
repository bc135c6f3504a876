"""`latentvar mixture ...`: Gaussian mixtures on a bundled real data set, and the foundation demo."""

from __future__ import annotations

from pathlib import Path

import typer

from latentvar.cli import flags
from latentvar.cli._output import json_option, say, where, write_json

app = typer.Typer(
    help="Mixture models: fit by EM or gradient descent, report clusters.", no_args_is_help=True
)


@app.command("fit")
def fit(
    data: str = typer.Option("wine", help="Bundled real data set: iris or wine (standardised)."),
    components: int = typer.Option(3, "--components", "-k", help="Number of mixture components K."),
    covariance: str = typer.Option("full", help="full or diag."),
    method: str = typer.Option("em", help="em or gradient."),
    max_iter: int = typer.Option(500, help="Iterations of EM / gradient steps."),
    seed: int = typer.Option(0, help="Seed of the k-means initialisation."),
    out: Path = typer.Option(
        Path("runs/mixture"), help="Run directory: checkpoint, metrics.json, report.html."
    ),
    json_path: Path = json_option(None, "the metrics (as OUT/metrics.json)"),
) -> None:
    """Fit a K-component Gaussian mixture and write its checkpoint, metrics and an HTML report."""
    flags.choice("data", data, ("iris", "wine"))
    flags.count("components", components)
    flags.choice("covariance", covariance, ("full", "diag"))
    flags.choice("method", method, ("em", "gradient"))
    flags.count("max-iter", max_iter)
    flags.out_dir("out", out)
    flags.out_file("json", json_path)
    from latentvar.apps.mixtures.fit import run

    metrics = run(data, components, covariance, method, max_iter, seed, out)
    write_json(json_path, metrics)
    say(
        f"mean log-likelihood {metrics['mean_loglik']:.5f} nats; report: {out / 'report.html'}"
        + where(json_path)
    )


def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output directory for report.html."),
    json_path: Path = json_option(None, "the metrics (as OUT/metrics.json)"),
) -> None:
    """Fit a 3-component full-covariance Gaussian mixture to the wine data set; write OUT/report.html."""
    fit(
        data="wine",
        components=3,
        covariance="full",
        method="em",
        max_iter=500,
        seed=0,
        out=out,
        json_path=json_path,
    )


app.command("demo")(demo)
