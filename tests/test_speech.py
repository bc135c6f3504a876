"""The speech application runs end to end on synthetic prompts laid out like the Asterisk packages (the real
data is fetched by scripts/ctc_speech_prepare.sh and is not part of the suite)."""

import json
import sys

import pytest
import torch

import killing
from killing import kill_once_checkpointed
from latentvar.apps.speech import train
from latentvar.apps.speech.data import load_prompts, normalise
from latentvar.io import load_checkpoint


def _prompts(root, n=12):
    killing.speech_prompts(root, n)


def test_transcripts_are_spelled_out_and_descriptions_dropped(tmp_path):
    _prompts(tmp_path)
    prompts = load_prompts(tmp_path)
    assert len(prompts) == 12  # the bracketed description has no audio and no words
    assert prompts[3][2] == normalise("Press 3 or *") == "press three or star"


def test_training_writes_metrics_report_and_checkpoint(tmp_path, monkeypatch):
    _prompts(tmp_path / "data")
    out = tmp_path / "out"
    argv = [
        "ctc_speech",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch",
        "4",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    train.main()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prompts"] == 12 and metrics["held_out_prompts"] == 1 and metrics["epochs"] == 1
    assert (out / "report.html").exists() and (out / "checkpoint.json").exists()


@pytest.mark.slow
def test_training_resumed_after_sigkill_matches_unbroken_run(tmp_path, monkeypatch, one_thread):
    """A run SIGKILLed mid-epoch and resumed with --resume ends with the unbroken run's weights, Adam's
    moments and dropout RNG state (atol 0), and the same held-out metrics. (The learning-rate schedule
    spans all epochs, so the killed run is given the same length.)"""
    _prompts(tmp_path / "data")
    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    common = ["--data", str(tmp_path / "data"), "--epochs", "20", "--batch", "4", "--hidden", "16"]
    common += ["--checkpoint-every", "2"]
    code = "import sys; from latentvar.apps.speech.train import main; sys.argv[0] = 'ctc_speech'; main()"
    killed_at = kill_once_checkpointed(code, killed, ["--out", str(killed), *common])["step"]
    # 11 training prompts: 3 steps an epoch; a checkpoint every 2 steps and at each epoch's end
    assert 2 <= killed_at < 60 and (killed_at % 2 == 0 or killed_at % 3 == 0)
    for out, resume in ((killed, ["--resume"]), (unbroken, [])):
        monkeypatch.setattr(sys, "argv", ["ctc_speech", "--out", str(out), *common, *resume])
        train.main()
    ta, ma = load_checkpoint(killed)
    tb, mb = load_checkpoint(unbroken)
    assert ma["step"] == mb["step"] == 60 and ma["epoch"] == 20
    assert sorted(ta) == sorted(tb) and "rng" in ta and any(k.startswith("optimizer.") for k in ta)
    for name in ta:
        torch.testing.assert_close(ta[name], tb[name], atol=0, rtol=0, msg=name)
    metrics = [json.loads((out / "metrics.json").read_text()) for out in (killed, unbroken)]
    for m in metrics:
        m.pop("train_seconds")
    assert metrics[0] == metrics[1]


def test_a_checkpoint_from_before_steps_and_adam_state_were_saved_resumes_at_its_epoch(tmp_path, monkeypatch):
    from latentvar.io import save_checkpoint

    _prompts(tmp_path / "data")
    out = tmp_path / "out"
    common = ["ctc_speech", "--data", str(tmp_path / "data"), "--out", str(out), "--batch", "4"]
    common += ["--hidden", "8"]
    monkeypatch.setattr(sys, "argv", [*common, "--epochs", "1"])
    train.main()
    tensors, meta = load_checkpoint(out)
    old = {k: v for k, v in tensors.items() if k.startswith("model.")}  # the old layout: weights only
    save_checkpoint(out, old, {"kind": "ctc-speech", "epoch": 1, "args": meta["args"]})
    from latentvar import runs
    from latentvar.progress import progress

    starts = []
    monkeypatch.setattr(runs, "progress", lambda *a, **kw: starts.append(kw["initial"]) or progress(*a, **kw))
    monkeypatch.setattr(sys, "argv", [*common, "--epochs", "2", "--resume"])
    train.main()
    assert starts == [3]  # 11 training prompts, batches of 4: 3 steps an epoch
    assert load_checkpoint(out)[1]["step"] == 6
