"""`latentvar generator train / sample / loglik` end to end on the embedded Twemoji set (tiny budgets),
resume after an interrupted run, and bad input."""

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from latentvar.apps.images.data import twemoji_tensor
from latentvar.apps.images.evaluate import bits_per_dim
from latentvar.apps.images.train import Run
from latentvar.cli import app

runner = CliRunner()
TINY = ["--latent-channels", "4", "--features", "8"]


def _invoke(*args):
    result = runner.invoke(app, ["generator", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_twemoji_images_on_white_in_range():
    y = twemoji_tensor("val")
    assert y.shape[1:] == (3, 32, 32) and y.dtype == torch.float32
    assert float(y.min()) >= -1 and float(y.max()) <= 1
    assert float(y[:, :, 0, 0].mean()) > 0.9  # corners are transparent -> white


def test_bits_per_dim_of_a_uniform_density():
    """The uniform density on [-1, 1]^D is 2^-D; on x = 127.5 (y + 1) in [0, 255] it is 255^-D: log2(255)."""
    import math

    assert abs(bits_per_dim(-3072 * math.log(2.0)) - math.log2(255)) < 1e-9


@pytest.mark.parametrize("objective", ["vae", "gan"])
def test_train_sample_loglik_end_to_end(tmp_path, objective):
    run = tmp_path / objective
    _invoke(
        "train",
        "--objective",
        objective,
        "--out",
        str(run),
        "--steps",
        "3",
        "--encoder-steps",
        "2",
        "--sigma-images",
        "8",
        *TINY,
    )
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 3 and (run / "checkpoint.safetensors").exists()
    if objective == "gan":
        sel = meta["sigma_selection"]
        assert sel["sigma"] in sel["grid"] and len(sel["val_iwae"]) == len(sel["grid"])
    grid = tmp_path / "grid.png"
    _invoke("sample", "--run", str(run), "-n", "9", "--out", str(grid))
    assert Image.open(grid).size == (2 * (3 * 33 + 1), 2 * (3 * 33 + 1))
    out = tmp_path / "ll.json"
    _invoke(
        "loglik", "--run", str(run), "--estimators", "elbo,iwae,ais", "--json", str(out),
        "--num-images", "3", "--num-samples", "4", "--ais-steps", "3", "--ais-chains", "2",
    )  # fmt: skip
    res = json.loads(out.read_text())
    assert set(res) == {"elbo", "iwae", "ais"}
    for r in res.values():
        assert {"nats_per_image", "stderr", "bits_per_dim"} <= set(r)
        assert all(isinstance(r[k], float) for k in ("nats_per_image", "stderr", "bits_per_dim"))
    # by default AIS starts from the VAE's encoder and from the GAN's prior (what measured better)
    assert res["ais"]["init"] == {"vae": "encoder", "gan": "prior"}[objective]
    _invoke(
        "loglik", "--run", str(run), "--estimators", "ais", "--json", str(out), "--num-images", "2",
        "--ais-steps", "2", "--ais-chains", "2", "--ais-init", "encoder",
    )  # fmt: skip
    res = json.loads(out.read_text())
    assert res["ais"]["init"] == "encoder" and isinstance(res["ais"]["nats_per_image"], float)
    assert res["ais"]["schedule"] == "sigmoid" and res["ais"]["num_steps"] == 2
    # the self-tuning schedule of `estimate.ais` under a chain-transition budget
    _invoke(
        "loglik", "--run", str(run), "--estimators", "ais", "--json", str(out), "--num-images", "1",
        "--ais-schedule", "adaptive", "--ais-max-cost", "3000",
    )  # fmt: skip
    res = json.loads(out.read_text())["ais"]
    assert res["schedule"] == "adaptive" and res["num_steps"] >= 1 and res["cost"] > 0
    assert isinstance(res["nats_per_image"], float) and isinstance(res["diagnostic"], str)
    for flags, named in (
        (["--ais-schedule", "cosine"], "ais-schedule"),
        (["--ais-max-cost", "10"], "ais-max-cost"),
    ):
        bad = runner.invoke(app, ["generator", "loglik", "--run", str(run), "--json", str(out), *flags])
        assert bad.exit_code != 0 and named in str(bad.exception), (flags, bad.exception)
    bad = runner.invoke(
        app, ["generator", "loglik", "--run", str(run), "--json", str(out), "--ais-init", "q"]
    )
    assert bad.exit_code != 0 and "ais_init" in str(bad.exception)


def test_resume_continues_from_the_checkpoint(tmp_path):
    run = tmp_path / "vae"
    _invoke("train", "--objective", "vae", "--out", str(run), "--steps", "2", *TINY)
    first = Run.load(run)
    _invoke("train", "--objective", "vae", "--out", str(run), "--steps", "4", "--resume", *TINY)
    second = Run.load(run)
    assert first.step == 2 and second.step == 4
    assert len(second.opt_main.state_dict()["state"]) > 0
    w1 = first.model.decoder.project.weight
    assert not torch.equal(w1, second.model.decoder.project.weight)


def test_bad_arguments(tmp_path):
    bad = runner.invoke(app, ["generator", "train", "--objective", "flow", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "objective" in str(bad.exception)
    bad = runner.invoke(
        app, ["generator", "train", "--data", "mnist", "--objective", "vae", "--out", str(tmp_path)]
    )
    assert bad.exit_code != 0 and "data" in str(bad.exception)
    missing = runner.invoke(app, ["generator", "sample", "--run", str(tmp_path / "none"), "--out", "g.png"])
    assert missing.exit_code != 0


def test_every_verb_has_help():
    for verb in ("train", "sample", "loglik", "report"):
        result = runner.invoke(app, ["generator", verb, "--help"])
        assert result.exit_code == 0 and len(result.output) > 100


def test_sigkill_then_resume(tmp_path):
    """A training process killed after its first checkpoint resumes from it and finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "vae"
    main = "import sys; from latentvar.cli import main; sys.argv[0] = 'latentvar'; main()"
    args = ["generator", "train", "--objective", "vae", "--out", str(run), "--steps", "100000", *TINY]
    cmd = [sys.executable, "-c", main, *args]
    env = os.environ | {"TQDM_DISABLE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not (run / "checkpoint.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = json.loads((run / "checkpoint.json").read_text())["step"]
    assert saved >= 250 and saved % 250 == 0
    _invoke("train", "--objective", "vae", "--out", str(run), "--steps", str(saved + 5), "--resume", *TINY)
    assert json.loads((run / "checkpoint.json").read_text())["step"] == saved + 5


def test_report_interpretation_is_written_from_the_numbers():
    from latentvar.apps.images.report import interpretation

    lg = {
        "exact": -100.0,
        "naive_mc_bias": {"num_samples": 10, "rows": [[16, -1.0, -1.5, 0.5, 0.1]]},
        "iwae": {"1": [-100.25, float("nan")], "10": [-100.125, 0.5]},
        "elbo": {"1": [-100.75, float("nan")]},
        "ais": {"10": [-103.0, 0.25, 1.0]},
        "bdmc_minus_exact": {"10": [-4.0, 2.5, 0.1, 0.1]},
    }
    tw = {"VAE": {"ais": {"nats_per_image": 585.0, "stderr": 3.0, "num_images": 20, "num_samples": 16,
                          "mean_ess": 1.5}, "sigma": 0.1}}  # fmt: skip
    html = interpretation(lg, tw)
    for number in ("-0.250 (k = 1)", "-0.125 ± 0.500 (k = 10)", "-3.00 ± 0.25 (10 steps)", "[-4.00, +2.50]"):
        assert number in html
    assert "ais 585 ± 3.00 nats (20 images, ESS 1.5 of 16)" in html and "degenerate for VAE" in html
