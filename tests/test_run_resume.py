"""Killed-and-resumed training runs end with the same weights as unbroken ones (issue 12, item 3): a run is
SIGKILLed in a subprocess once a checkpoint exists, resumed from it, and compared with a run that was never
interrupted, tensor for tensor with atol 0."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from killing import kill_once_checkpointed
from latentvar.io import load_checkpoint


def _assert_same_tensors(a: Path, b: Path, prefixes: tuple[str, ...] = ("",)) -> None:
    ta, _ = load_checkpoint(a)
    tb, _ = load_checkpoint(b)
    names = [n for n in ta if n.startswith(prefixes)]
    assert names and sorted(names) == sorted(n for n in tb if n.startswith(prefixes))
    for name in names:
        torch.testing.assert_close(ta[name], tb[name], atol=0, rtol=0, msg=name)


LM = dict(
    vocab_size=300, max_sentences=200, batch_size=8, dim=16, hidden=16, lr=3e-3, seed=3, threads=1, every=2
)


@pytest.mark.slow
def test_lm_fit_resumed_after_sigkill_matches_unbroken_run(tmp_path):
    from latentvar.apps.pos.lm import fit

    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    code = f"from latentvar.apps.pos.lm import fit; fit({str(killed)!r}, steps=100000, **{LM!r})"
    killed_at = kill_once_checkpointed(code, killed)["step"]
    assert killed_at >= 2 and killed_at % 2 == 0
    steps = killed_at + 4
    resumed = fit(killed, steps=steps, **LM)
    assert resumed["step"] == steps
    whole = fit(unbroken, steps=steps, **LM)
    assert whole["step"] == steps and whole["history"] == resumed["history"]
    _assert_same_tensors(killed, unbroken)  # the network and Adam's moments


@pytest.mark.parametrize(("old", "name"), [("opt", None), ("optim", None), ("opt_main", "main")])
def test_optimizer_state_saves_under_one_prefix_and_old_prefixes_still_load(old, name):
    from latentvar.io import optimizer_tensors
    from latentvar.runs import load_optimizer, save_optimizer

    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.Adam([w], lr=0.1)
    (w**2).sum().backward()
    opt.step()
    saved = save_optimizer(opt, name)
    assert saved and all(k.startswith("optimizer." if name is None else f"optimizer.{name}.") for k in saved)
    for tensors, prefix in (
        (saved, "optimizer" if name is None else f"optimizer.{name}"),
        (optimizer_tensors(opt, old), old),
    ):
        fresh = torch.optim.Adam([torch.nn.Parameter(w.detach().clone())], lr=0.1)
        assert load_optimizer(fresh, tensors, name) == prefix
        for key, value in opt.state_dict()["state"][0].items():
            torch.testing.assert_close(
                torch.as_tensor(fresh.state_dict()["state"][0][key]), torch.as_tensor(value)
            )
    assert load_optimizer(torch.optim.Adam([w]), {}, name) is None  # nothing saved: Adam starts afresh


def _record_bars(monkeypatch) -> list[dict]:
    """Replace the run harness's ``progress`` (every training loop's bar is `Run.progress`) by a recorder
    of each bar's (initial, total), still drawing the bar."""
    from latentvar import runs
    from latentvar.progress import progress

    bars = []

    def recording(iterable=None, desc=None, total=None, **kw):
        bars.append({"desc": desc, "initial": kw.get("initial", 0), "total": total})
        return progress(iterable, desc=desc, total=total, **kw)

    monkeypatch.setattr(runs, "progress", recording)
    return bars


def test_progress_bars_resume_at_the_saved_step(tmp_path, monkeypatch):
    """A resumed run's bar starts at the checkpoint's step, out of the run's whole length."""
    from latentvar.apps.digits import train as ctc_digits
    from latentvar.apps.digits.model import Config
    from latentvar.apps.images import train as images
    from latentvar.apps.pos import lm
    from latentvar.apps.pos import train as pos

    bars = _record_bars(monkeypatch)
    lm.fit(tmp_path / "lm", steps=2, **LM)
    lm.fit(tmp_path / "lm", steps=4, **LM)
    assert [(b["initial"], b["total"]) for b in bars] == [(0, 2), (2, 4)]

    bars = _record_bars(monkeypatch)
    hmm = dict(states=3, emission="categorical", vocab_size=100, max_sentences=40, batch_tokens=1000)
    hmm |= dict(lr=0.01, seed=0, threads=1)
    pos.fit(tmp_path / "hmm", iters=1, **hmm)
    pos.fit(tmp_path / "hmm", iters=2, **hmm)
    assert [(b["initial"], b["total"]) for b in bars] == [(0, 1), (1, 2)]

    bars = _record_bars(monkeypatch)
    ctc_digits.train(tmp_path / "ctc", Config(steps=2, batch=4, hidden=8, channels=4, checkpoint_every=2))
    cfg = Config(steps=3, batch=4, hidden=8, channels=4, checkpoint_every=2)
    ctc_digits.train(tmp_path / "ctc", cfg, resume=True)
    assert [(b["initial"], b["total"]) for b in bars] == [(0, 2), (2, 3)]

    bars = _record_bars(monkeypatch)
    gen = dict(data="twemoji", objective="gan", latent_channels=4, features=8, batch_size=8, sigma_images=4)
    images.train(out=tmp_path / "gan", steps=2, encoder_steps=1, **gen)
    images.train(out=tmp_path / "gan", steps=3, encoder_steps=2, resume=True, **gen)
    assert [(b["initial"], b["total"]) for b in bars] == [(0, 2), (0, 1), (2, 3), (1, 2)]


@pytest.mark.parametrize("verb", ["lm", "hmm"])
def test_resume_flag_continues_and_a_bare_rerun_still_does_with_a_deprecation_note(tmp_path, verb):
    """`--resume` continues OUT's checkpoint, as for ctc/generator/colorize train; a re-run without it still
    resumes (the documented hmm/lm behaviour) but says on stderr that this is deprecated."""
    from typer.testing import CliRunner

    from latentvar.cli import app

    runner = CliRunner()
    run = tmp_path / verb
    common = [verb, "fit", "--out", str(run), "--max-sentences", "40", "--vocab", "100"]
    if verb == "lm":
        common += ["--batch-size", "4", "--dim", "8", "--hidden", "8"]
        count, key = "--steps", "step"
    else:
        common += ["--states", "3"]
        count, key = "--iters", "iteration"
    first = runner.invoke(app, [*common, count, "1"])
    assert first.exit_code == 0, first.output
    assert "deprecated" not in first.stderr
    bare = runner.invoke(app, [*common, count, "2"])
    assert bare.exit_code == 0, bare.output
    assert "pass --resume" in bare.stderr and "deprecated" in bare.stderr
    assert load_checkpoint(run)[1][key] == 2
    flagged = runner.invoke(app, [*common, count, "3", "--resume"])
    assert flagged.exit_code == 0, flagged.output
    assert "deprecated" not in flagged.stderr
    assert load_checkpoint(run)[1][key] == 3
    fresh = runner.invoke(app, [*common[:3], str(tmp_path / "new"), *common[4:], count, "1", "--resume"])
    assert fresh.exit_code == 0, (
        fresh.output
    )  # --resume with nothing to resume starts a run, as for ctc train


@pytest.mark.slow
@pytest.mark.parametrize("emission", ["categorical", "neural"])
def test_hmm_fit_resumed_after_sigkill_matches_unbroken_run(tmp_path, emission):
    from latentvar.apps.pos.train import fit

    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    kw = dict(states=3, emission=emission, vocab_size=100, max_sentences=60, batch_tokens=300, lr=0.05)
    kw |= dict(seed=1, threads=1, features="ngrams")
    code = f"from latentvar.apps.pos.train import fit; fit({str(killed)!r}, iters=100000, **{kw!r})"
    killed_at = kill_once_checkpointed(code, killed)["iteration"]
    assert killed_at >= 1
    iters = killed_at + 2
    resumed = fit(killed, iters=iters, **kw)
    whole = fit(unbroken, iters=iters, **kw)
    assert resumed["iteration"] == whole["iteration"] == iters
    assert resumed["history"] == whole["history"]
    _assert_same_tensors(killed, unbroken)  # the HMM, the emission network and Adam's moments


@pytest.mark.slow
def test_generator_train_resumed_after_sigkill_matches_unbroken_run(tmp_path, one_thread):
    from latentvar.apps.images.train import train

    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    kw = dict(data="twemoji", objective="vae", latent_channels=4, features=8, batch_size=16, seed=2)
    kw |= dict(save_every=2, show_progress=False)
    code = (
        f"from latentvar.apps.images.train import train; train(out={str(killed)!r}, steps=100000, **{kw!r})"
    )
    killed_at = kill_once_checkpointed(code, killed)["step"]
    assert killed_at >= 2 and killed_at % 2 == 0
    steps = killed_at + 4
    resumed = train(out=killed, steps=steps, resume=True, **kw)
    whole = train(out=unbroken, steps=steps, **kw)
    assert resumed["step"] == whole["step"] == steps
    _assert_same_tensors(killed, unbroken)  # the networks, Adam's moments and the RNG state


@pytest.mark.slow
def test_ctc_train_resumed_after_sigkill_matches_unbroken_run(tmp_path, one_thread):
    """(The learning-rate schedule spans ``steps``, so the killed run is given the same length.)"""
    from latentvar.apps.digits.model import Config, load
    from latentvar.apps.digits.train import train

    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    kw = dict(steps=200, batch=4, hidden=8, channels=4, checkpoint_every=2)
    code = "from latentvar.apps.digits.model import Config; from latentvar.apps.digits.train import train; "
    code += f"train({str(killed)!r}, Config(**{kw!r}))"
    killed_at = kill_once_checkpointed(code, killed)["step"]
    assert 2 <= killed_at < 200 and killed_at % 2 == 0
    assert train(killed, Config(**kw), resume=True)["resumed_from"] == killed_at
    train(unbroken, Config(**kw))
    _, _, ta = load(killed)
    _, _, tb = load(unbroken)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        torch.testing.assert_close(ta[name], tb[name], atol=0, rtol=0, msg=name)


GAN = dict(data="twemoji", objective="gan", latent_channels=4, features=8, batch_size=16, seed=2)
GAN |= dict(save_every=2, show_progress=False, sigma_images=4)
TRAIN = "from latentvar.apps.images.train import train; "


def _assert_same_gan_runs(a: Path, b: Path) -> None:
    _assert_same_tensors(a, b)  # decoder, σ, encoder, discriminator, three Adam states, the RNG state
    ma, mb = load_checkpoint(a)[1], load_checkpoint(b)[1]
    for key in ("step", "encoder_step", "sigma_selection"):
        assert ma[key] == mb[key], key


@pytest.mark.slow
def test_generator_gan_train_killed_in_the_adversarial_phase_resumes_exactly(tmp_path, one_thread):
    from latentvar.apps.images.train import train

    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    code = TRAIN + f"train(out={str(killed)!r}, steps=100000, encoder_steps=4, **{GAN!r})"
    killed_at = kill_once_checkpointed(code, killed)["step"]
    assert killed_at >= 2 and killed_at % 2 == 0
    steps = killed_at + 4
    resumed = train(out=killed, steps=steps, encoder_steps=4, resume=True, **GAN)
    whole = train(out=unbroken, steps=steps, encoder_steps=4, **GAN)
    assert resumed["step"] == whole["step"] == steps
    _assert_same_gan_runs(killed, unbroken)


@pytest.mark.slow
def test_generator_gan_train_killed_in_the_encoder_phase_resumes_exactly(tmp_path, one_thread):
    """The decoder is frozen after the adversarial steps; the encoder and σ are fitted, then σ chosen."""
    from latentvar.apps.images.train import train

    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    code = TRAIN + f"train(out={str(killed)!r}, steps=2, encoder_steps=100000, **{GAN!r})"
    killed_at = kill_once_checkpointed(code, killed, until=lambda m: m["encoder_step"] >= 2)["encoder_step"]
    assert killed_at >= 2 and killed_at % 2 == 0
    encoder_steps = killed_at + 4
    resumed = train(out=killed, steps=2, encoder_steps=encoder_steps, resume=True, **GAN)
    whole = train(out=unbroken, steps=2, encoder_steps=encoder_steps, **GAN)
    assert resumed["encoder_step"] == whole["encoder_step"] == encoder_steps
    _assert_same_gan_runs(killed, unbroken)


def test_run_harness_resumes_only_when_asked_and_something_is_saved(tmp_path):
    import os

    from latentvar.io import FILE_MODE
    from latentvar.runs import Run, module_tensors, tensors_under

    assert Run(tmp_path / "new", resume=True).load() is None  # --resume with nothing saved: a fresh run
    net = torch.nn.Linear(2, 3)
    Run(tmp_path / "run").save(module_tensors(net, "net"), {"step": 7, "history": [1.5]})
    assert os.stat(tmp_path / "run" / "checkpoint.safetensors").st_mode & 0o777 == FILE_MODE
    assert Run(tmp_path / "run").exists and Run(tmp_path / "run").load() is None  # not resuming
    saved = Run(tmp_path / "run", resume=True).load()
    assert saved.step == 7 and saved.meta["history"] == [1.5]
    for name, value in net.state_dict().items():
        torch.testing.assert_close(tensors_under(saved.tensors, "net")[name], value, atol=0, rtol=0)
    with pytest.raises(ValueError, match="^meta: expected the run's step count under 'iteration'"):
        Run(tmp_path / "run", step_key="iteration").save({}, {"step": 1})
    run = Run(tmp_path / "run", resume=True)
    run.check_settings(
        {"states": 3}, {"states": ("--states", 3), "init": ("--init", "random")}, {"init": "random"}
    )
    with pytest.raises(ValueError, match=r"^--states: .* was fitted with 3, got 5; resume with the same"):
        run.check_settings({"states": 3}, {"states": ("--states", 5)})


def test_colorize_train_refuses_to_resume_another_model_with_the_harness_message(tmp_path):
    from latentvar.colorize.train import TrainConfig, train

    common = dict(data="twemoji", size=32, batch_size=4, steps=1, out=str(tmp_path), width=4, hidden=8)
    train(TrainConfig(model="per-pixel", **common), show_progress=False)
    with pytest.raises(ValueError, match="^--model: .* was fitted with 'per-pixel', got 'latent'; resume"):
        train(TrainConfig(model="latent", **common), resume=True, show_progress=False)
