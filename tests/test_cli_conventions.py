"""The command line's conventions, one rule for every verb (src/latentvar/cli/__init__.py): `--json PATH`
on every verb that computes metrics, `-` meaning stdout, which then holds that JSON and nothing else;
summaries on stderr; exit status 0 / 2 (bad input, `error: <argument>: ...`) / 1 (internal error, one
line); `--version`; a missing optional extra names the extra to install.

The verbs run in-process through `latentvar.cli._errors.run`, the entry point's own code, so exit statuses
and the split of stdout / stderr are what a shell sees."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cli_bad_inputs import cli_verbs
from latentvar import __version__
from latentvar.cli import app
from latentvar.cli._errors import run

# Every verb that computes metrics, and where its --json goes when not given.
METRICS_VERBS = {
    ("mixture", "fit"): None,
    ("mixture", "demo"): None,
    ("demo",): None,
    ("colorize", "demo"): None,
    ("colorize", "eval"): "-",
    ("hmm", "eval"): "-",
    ("hmm", "supervised"): "-",
    ("lm", "eval"): "-",
    ("ctc", "eval"): "-",
    ("generator", "loglik"): "-",
}
# The verbs whose stdout is their product (the rule's only exceptions).
STDOUT_VERBS = {("lm", "sample"), ("serve",)}


def _cli(capsys, *args):
    """(exit status, stdout, stderr) of `latentvar ARGS`."""
    code = run(app, [str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_verb_is_classified_and_metrics_verbs_take_json():
    verbs = dict(cli_verbs())
    unclassified = set(verbs) - set(METRICS_VERBS) - STDOUT_VERBS
    for verb, command in verbs.items():
        json_opts = [p for p in command.params if "--json" in getattr(p, "opts", [])]
        if verb in METRICS_VERBS:
            assert json_opts, f"{' '.join(verb)}: a metrics verb without --json"
            default = json_opts[0].default
            assert (None if default is None else str(default)) == METRICS_VERBS[verb], verb
            assert not json_opts[0].required, f"{' '.join(verb)}: --json must be optional"
        else:
            assert not json_opts, f"{' '.join(verb)}: --json on a verb not listed in METRICS_VERBS"
    # every other verb is a run / report / file writer whose stdout stays empty (tested below for some)
    assert ("hmm", "fit") in unclassified and ("colorize", "apply") in unclassified


def test_mixture_fit_json_dash_is_json_on_stdout_and_nothing_else(capsys, tmp_path):
    code, out, err = _cli(
        capsys, "mixture", "fit", "--data", "iris", "-k", "3", "--out", tmp_path, "--json", "-"
    )
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics == json.loads((tmp_path / "metrics.json").read_text())
    assert "mean log-likelihood" in err and "mean log-likelihood" not in out


def test_mixture_fit_without_json_prints_nothing_on_stdout_and_writes_0644(capsys, tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    code, out, err = _cli(capsys, "mixture", "fit", "--data", "iris", "-k", "2", "--out", tmp_path)
    assert code == 0, err
    assert out == ""
    assert "report:" in err
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_colorize_eval_json_dash_and_json_file(capsys, tmp_path):
    code, out, err = _cli(capsys, "colorize", "eval", "--baseline", "grey", "--json", "-")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["data"] == "twemoji" and metrics["num_images"] > 0
    assert "nll_nats_per_pixel=" in err
    # the old form, --json FILE, still works: the file holds the JSON, stdout stays empty
    path = tmp_path / "m.json"
    code, out, err = _cli(capsys, "colorize", "eval", "--baseline", "grey", "--json", path)
    assert code == 0, err
    assert out == "" and json.loads(path.read_text()) == metrics
    assert str(path) in err


FLAT = {"cer": 0.25, "nll_per_token": 6.0, "mean_loglik": -1.5, "accuracy": 0.9}
PER_ESTIMATOR = {"elbo": {"nats_per_image": 1.5, "stderr": 0.1, "bits_per_dim": 0.2}}

# verb args, the application function it calls (replaced: these need trained runs), what that returns
FAKED = [
    (["hmm", "eval", "--run", "{tmp}"], "latentvar.apps.pos.evaluate.evaluate", FLAT),
    (["hmm", "supervised", "--out", "{tmp}"], "latentvar.apps.pos.evaluate.supervised", FLAT),
    (["lm", "eval", "--run", "{tmp}"], "latentvar.apps.pos.lm.evaluate", FLAT),
    (["ctc", "eval", "--run", "{tmp}"], "latentvar.apps.digits.evaluate.evaluate", FLAT),
    (["generator", "loglik", "--run", "{tmp}"], "latentvar.apps.images.evaluate.loglik", PER_ESTIMATOR),
    (["mixture", "demo", "--out", "{tmp}"], "latentvar.apps.mixtures.fit.run", FLAT),
]


def _faking(result):
    def fake(*args, **kwargs):
        print("noise a careless application would print", file=sys.stderr)
        return json.loads(json.dumps(result))

    return fake


@pytest.mark.parametrize(
    "args, target, result", FAKED, ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else ""
)
def test_every_metrics_verb_json_dash_is_valid_json_and_nothing_else(
    capsys, monkeypatch, tmp_path, args, target, result
):
    monkeypatch.setattr(target, _faking(result))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out, err = _cli(capsys, *argv, "--json", "-")
    assert code == 0, err
    assert json.loads(out) == result
    assert "noise" in err
    # and --json FILE: the JSON there, stdout empty
    code, out, err = _cli(capsys, *argv, "--json", tmp_path / "m.json")
    assert code == 0, err
    assert out == ""
    assert json.loads((tmp_path / "m.json").read_text()) == result


@pytest.mark.parametrize(
    "verb, target",
    [(["demo"], "latentvar.colorize.demo.run"), (["colorize", "demo"], "latentvar.colorize.demo.run")],
)
def test_demo_json_dash(capsys, monkeypatch, tmp_path, verb, target):
    monkeypatch.setattr(target, lambda out, steps=None: {"latent": {"nll_nats_per_pixel": 1.0, "auc": 0.5}})
    code, out, err = _cli(capsys, *verb, "--out", tmp_path, "--json", "-")
    assert code == 0, err
    assert json.loads(out)["latent"]["auc"] == 0.5
    assert "report:" in err


def test_evaluation_verbs_default_to_json_on_stdout(capsys, monkeypatch, tmp_path):
    """hmm / lm / ctc eval printed their JSON without --json before the rule: they still do."""
    monkeypatch.setattr("latentvar.apps.pos.lm.evaluate", _faking(FLAT))
    code, out, _ = _cli(capsys, "lm", "eval", "--run", tmp_path)
    assert code == 0 and json.loads(out) == FLAT


def test_an_internal_error_exits_1_with_one_line(capsys, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nwith a second line")

    monkeypatch.setattr("latentvar.apps.mixtures.fit.run", broken)
    monkeypatch.delenv("LATENTVAR_DEBUG", raising=False)
    code, out, err = _cli(capsys, "mixture", "fit", "--out", tmp_path)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("error: internal error (RuntimeError): something inside broke with a second line")
    assert "LATENTVAR_DEBUG=1" in err
    monkeypatch.setenv("LATENTVAR_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something inside broke"):
        run(app, ["mixture", "fit", "--out", str(tmp_path)])


BAD = [
    (["mixture", "fit", "--data", "mnist"], "data"),  # a ValueError from the application
    (["mixture", "fit", "-k", "three"], "components"),  # click's own type check
    (["hmm", "fit", "--data", "penn"], "data"),  # a typer.BadParameter in the verb
    (["hmm", "fit", "--emission", "gmm"], "emission"),
    (["hmm", "eval"], "run"),  # a missing required option
    (["hmm", "eval", "--run", "x", "--bogus"], "bogus"),  # an unknown option
    (["hmm", "fitt"], "usage"),  # an unknown verb
    (["colorize", "apply", "{tmp}/none.png", "--out", "{tmp}"], "images"),
    (["colorize", "apply"], "images"),  # a missing argument
    (["colorize", "eval", "--run", "photo", "--baseline", "grey"], "run/baseline"),
    (["colorize", "eval", "--baseline", "grey", "--split", "dev"], "split"),
    (["generator", "sample", "--run", "{tmp}", "-n", "0"], "n"),
    (["generator", "loglik", "--run", "{tmp}", "--estimators", "magic"], "estimators"),
    (["serve", "--port", "70000"], "port"),
]


@pytest.mark.parametrize("args, argument", BAD, ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_bad_input_exits_2_naming_the_argument(capsys, tmp_path, args, argument):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out, err = _cli(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert err.startswith(f"error: {argument}: "), err
    assert "Traceback" not in err


def test_missing_extra_names_the_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # `import cairosvg` now raises ImportError
    code, out, err = _cli(capsys, "colorize", "prepare", "openmoji", "--out", tmp_path)
    assert code == 2
    assert out == ""
    assert err.startswith("error: cairosvg: ")
    assert err.rstrip().endswith("install the extra with pip install 'latentvar[prepare]'"), err
    assert err.count("\n") == 1


def test_version(capsys):
    code, out, err = _cli(capsys, "--version")
    assert (code, out, err) == (0, f"latentvar {__version__}\n", "")


def test_version_is_the_installed_metadata_and_from_the_console_script():
    from importlib.metadata import version

    assert version("latentvar") == __version__
    script = Path(sys.executable).parent / "latentvar"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == f"latentvar {__version__}\n"


def test_the_version_has_one_source():
    """pyproject.toml takes the version from src/latentvar/__init__.py (hatchling's dynamic version)."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/latentvar/__init__.py"
