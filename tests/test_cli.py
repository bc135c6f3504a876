"""The console command: --help on every verb, and the mixture verbs doing real work."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latentvar.cli import app

runner = CliRunner()


def _all_verbs(group, prefix=()):
    import typer.main

    cmd = typer.main.get_command(group)
    out = [prefix]
    for name, sub in getattr(cmd, "commands", {}).items():
        if hasattr(sub, "commands"):
            out += [(*prefix, name)] + [(*prefix, name, c) for c in sub.commands]
        else:
            out.append((*prefix, name))
    return out


@pytest.mark.parametrize("verb", _all_verbs(app))
def test_help_on_every_verb(verb):
    result = runner.invoke(app, [*verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_mixture_fit_writes_checkpoint_metrics_and_report(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["mixture", "fit", "--data", "iris", "-k", "3", "--covariance", "diag", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert abs(metrics["mean_loglik"] - metrics["sklearn_mean_loglik"]) < 0.05
    assert metrics["adjusted_rand_vs_classes"] > 0.5
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert (out / "checkpoint.safetensors").exists()


def test_console_script_and_module_entry_points():
    script = Path(sys.executable).parent / "latentvar"
    for cmd in ([str(script), "--help"], [sys.executable, "-m", "latentvar", "--help"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "mixture" in proc.stdout


def test_bad_cli_argument_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["mixture", "fit", "--data", "mnist", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "data: expected one of ['iris', 'wine']" in str(result.exception) + result.output


def test_console_reports_bad_input_without_a_traceback(tmp_path):
    script = Path(sys.executable).parent / "latentvar"
    proc = subprocess.run(
        [str(script), "mixture", "fit", "--data", "mnist", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "error: data: expected one of ['iris', 'wine'], got 'mnist'" in proc.stderr
    assert "Traceback" not in proc.stderr
