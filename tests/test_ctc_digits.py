"""The handwritten-digit-strings application: the split, the lines, resume after a kill, the CLI."""

import json

import pytest
import torch
from typer.testing import CliRunner

from latentvar.apps.digits import train as ctc_digits
from latentvar.apps.digits.data import digit_scans, make_lines, split_indices
from latentvar.apps.digits.model import Config, LineReader
from latentvar.cli import app


def test_no_scan_in_both_train_and_test():
    parts = split_indices(1797)
    train, test = set(parts["train"].tolist()), set(parts["test"].tolist())
    assert not train & test
    assert train | test == set(range(1797))
    scans = digit_scans()
    assert len(scans["test"][1]) == len(test) and len(scans["train"][1]) == len(train)


def test_lines_are_the_scans_side_by_side():
    images, labels = digit_scans()["test"]
    cfg = Config()
    pixels, widths, digits, lengths, scans = make_lines(
        images, labels, 20, cfg, torch.Generator().manual_seed(0)
    )
    assert ((lengths >= 3) & (lengths <= 10)).all()
    for i in range(20):
        n = int(lengths[i])
        assert digits[i, :n].tolist() == labels[scans[i, :n]].tolist()
        line = pixels[i, :, : int(widths[i])]
        # every scan appears, in order, as an 8x8 block of the line
        column = 0
        for s in scans[i, :n].tolist():
            while not torch.equal(line[:, column : column + 8], images[s]):
                column += 1
                assert column + 8 <= line.shape[1]
            column += 8
        assert int(widths[i]) >= 8 * n + 2
    assert LineReader.frames(widths).max() * 2 >= widths.max()


def test_training_resumes_after_a_kill(tmp_path, monkeypatch):
    cfg = Config(steps=4, batch=4, hidden=8, channels=4, checkpoint_every=2)
    ctc_digits.train(tmp_path / "straight", cfg)

    real = ctc_digits.make_lines
    calls = {"n": 0}

    def dies_at_step_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ctc_digits, "make_lines", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        ctc_digits.train(tmp_path / "killed", cfg)
    monkeypatch.setattr(ctc_digits, "make_lines", real)
    assert json.loads((tmp_path / "killed" / "checkpoint.json").read_text())["step"] == 2
    summary = ctc_digits.train(tmp_path / "killed", cfg, resume=True)
    assert summary["resumed_from"] == 2
    a, _, _ = ctc_digits.load(tmp_path / "straight")
    b, _, _ = ctc_digits.load(tmp_path / "killed")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


def test_cli_train_eval_align(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, ["ctc", "train", "--out", str(run), "--steps", "3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ctc", "eval", "--run", str(run), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"cer", "sequence_accuracy", "num_lines"} <= set(metrics) and metrics["num_lines"] == 500
    result = runner.invoke(
        app, ["ctc", "align", "--run", str(run), "--out", str(tmp_path / "al"), "--lines", "2"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "al" / "line_01.png").exists() and (tmp_path / "al" / "report.html").exists()
    for verb in ("train", "eval", "align"):
        assert runner.invoke(app, ["ctc", verb, "--help"]).exit_code == 0
