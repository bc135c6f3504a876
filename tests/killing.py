"""Shared by the resume and fault tests: run a command in a fresh interpreter and SIGKILL it once a checkpoint
exists; or, for the fault-injection campaign, inside a checkpoint write or at a random moment, many times."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from latentvar.io import load_checkpoint

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
CLI = "import sys; from latentvar.cli import main; sys.argv[0] = 'latentvar'; main()"


def kill_once_checkpointed(
    code: str,
    run: Path,
    args: list[str] = (),
    timeout: float = 120,
    until: Callable[[dict], bool] = lambda meta: True,
) -> dict:
    """Run ``python -c code *args``, SIGKILL it as soon as ``run`` holds a checkpoint whose metadata
    satisfies ``until`` (any checkpoint by default), and return that checkpoint's metadata."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=ENV, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + timeout
        while not ((run / "checkpoint.json").exists() and until(load_checkpoint(run)[1])):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, f"no checkpoint within {timeout} s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    return load_checkpoint(run)[1]


# -- fault injection (tests/test_faults.py, bench/fault_injection.py) ---------------------------------------
# A training verb runs in a child interpreter whose checkpoint writes report each phase to a log file and can
# pause in one of them, so that a SIGKILL lands *inside* the write; or it is killed at a random moment. Each
# kill is followed by a resume, and the last resume runs to the end.

TESTS = str(Path(__file__).resolve().parent)
FAULT_ENV = {**ENV, "PYTHONPATH": os.pathsep.join([SRC, TESTS])}
HOOK = "import killing; killing.install_write_hook(); "
# where a kill inside `latentvar.io.save_checkpoint` can land: the tensors written to the temporary file but
# not yet fsynced; fsynced but not yet renamed over the checkpoint; renamed, the .json copy not yet written
WRITE_PHASES = ("written", "synced", "replaced")


def install_write_hook() -> None:
    """In the child: log each checkpoint write's phases (WRITE_PHASES, then ``done``) to $FAULT_LOG, and
    pause (sleep) at $FAULT_PAUSE = ``<phase>:<k>``, the k-th write's phase, for the parent to kill it. Hooks
    os.fsync and os.replace, which `latentvar.io.atomic_write_bytes` calls; nothing in latentvar changes."""
    log = Path(os.environ["FAULT_LOG"])
    phase, _, k = os.environ.get("FAULT_PAUSE", "").partition(":")
    writes = {"n": 0}
    real_fsync, real_replace = os.fsync, os.replace

    def event(what: str) -> None:
        if what == "written":
            writes["n"] += 1
        with open(log, "a") as f:
            f.write(f"{what}\n")
        if what == phase and writes["n"] == int(k):
            with open(log, "a") as f:
                f.write("paused\n")
            time.sleep(3600)

    def fsync(fd):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if ".safetensors." in Path(target).name and target.endswith(".tmp"):
            event("written")
        return real_fsync(fd)

    def replace(src, dst, *args, **kw):
        dst_name = os.fspath(dst)
        if dst_name.endswith(".safetensors"):
            event("synced")
        result = real_replace(src, dst, *args, **kw)
        if dst_name.endswith(".safetensors"):
            event("replaced")
        elif dst_name.endswith(".json") and Path(dst_name).with_suffix(".safetensors").exists():
            event("done")
        return result

    os.fsync, os.replace = fsync, replace


@dataclass
class Verb:
    """A training verb as the fault tests drive it: ``code(out, resume)`` is the Python that trains run
    folder ``out`` to the end (continuing it with ``resume``); ``step_key`` counts progress in its metadata
    and ``final`` is its value at the end; ``exact``: an unbroken run is deterministic, so a killed and
    resumed one must end with the same tensors; ``prepare(root)`` makes what ``code`` reads (synthetic data)."""

    name: str
    code: Callable[[Path, bool], str]
    step_key: str
    final: int
    exact: bool = True
    prepare: Callable[[Path], None] | None = None


@dataclass
class KillReport:
    verb: str
    kills: int = 0
    during_write: int = 0  # kills that landed inside a checkpoint write (paused there, or by chance)
    phases: dict = field(default_factory=dict)  # of those, by the write phase they were in (when known)
    random_kills: int = 0
    random_during_write: int = 0
    resumes: int = 0
    finished_early: int = 0
    checks: int = 0  # checkpoints loaded and checked after a kill
    same_as_unbroken: bool | None = None
    difference: float | None = None  # the largest |tensor difference| from the unbroken run
    seconds: float = 0.0


def checkpoints(out: Path) -> dict[str, Path]:
    """The run folders under ``out`` (the RBM app trains several) by relative name."""
    return {str(p.parent.relative_to(out)): p.parent for p in sorted(out.rglob("checkpoint.safetensors"))}


def temporaries(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob(".checkpoint.*.tmp")} if out.exists() else set()


def check_valid(out: Path, step_key: str, seen: dict[str, int]) -> int:
    """Every checkpoint under ``out`` loads, holds finite tensors, and has not gone back in ``step_key``
    (``seen``: the last step of each, updated); returns how many were checked."""
    import torch

    for name, folder in checkpoints(out).items():
        tensors, meta = load_checkpoint(folder)
        for key, t in tensors.items():
            if t.is_floating_point():
                assert torch.isfinite(t).all(), f"{folder}: {key} is not finite"
        step = int(meta.get(step_key, 0))
        assert step >= seen.get(name, 0), f"{folder}: {step_key} went back from {seen[name]} to {step}"
        seen[name] = step
    return len(checkpoints(out))


def _events(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def run_killed(
    verb: Verb, out: Path, resume: bool, mode: str, rng, work: Path, timeout: float = 300
) -> tuple[bool, str | None, bool]:
    """Start ``verb`` on ``out`` in a child and SIGKILL it: ``mode`` 'write' pauses it inside a checkpoint
    write (a random phase of its first or second write; of its first when resumed) and kills it there;
    'random' kills it at a random moment of the step-and-save cycle after its second or third checkpoint (its
    second when resumed). Returns (killed, the write phase it
    was killed in or None, whether the kill landed inside a write: a phase logged without its ``done``, or
    a temporary file left)."""
    log = work / f"events-{rng.getrandbits(48):012x}.log"
    # a resumed run may have only one or two checkpoints left to write (the kill before it can land late in
    # its run): it is paused in its first write and killed at random after its second, so it never ends first
    nth = (1, 2) if not resume else (1,)
    pause = f"{rng.choice(WRITE_PHASES)}:{rng.choice(nth)}" if mode == "write" else ""
    before = temporaries(out)
    stderr = open(work / f"{log.stem}.stderr", "w+")
    env = {**FAULT_ENV, "FAULT_LOG": str(log), "FAULT_PAUSE": pause}
    proc = subprocess.Popen([sys.executable, "-c", HOOK + verb.code(out, resume)], env=env, stderr=stderr)
    try:
        deadline = time.time() + timeout
        # 'random': after the j-th checkpoint of this process, a moment drawn uniformly over the time the
        # one before it took, so the kill lands anywhere in a step-and-save cycle
        after = rng.choice((2, 3) if not resume else (2,))
        wanted, count, seen_at = ("paused", 1, []) if mode == "write" else ("done", after, [])
        while proc.poll() is None and len(seen_at) < count:
            assert time.time() < deadline, f"{verb.name}: no checkpoint within {timeout} s"
            if _events(log).count(wanted) > len(seen_at):
                seen_at.append(time.perf_counter())
            else:
                time.sleep(0.002)
        if mode == "random" and proc.poll() is None:
            time.sleep(rng.uniform(0, seen_at[-1] - seen_at[-2]))
        if proc.poll() is not None:  # it ended first: it must have finished cleanly
            stderr.seek(0)
            assert proc.returncode == 0, f"{verb.name} failed:\n{stderr.read()[-3000:]}"
            return False, None, False
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    events = [e for e in _events(log) if e != "paused"]
    last = events[-1] if events else None
    phase = pause.partition(":")[0] if mode == "write" else (last if last in WRITE_PHASES else None)
    landed = phase is not None or bool(temporaries(out) - before)
    return True, phase, landed


def run_inline(code: str) -> None:
    """Run a verb's code in this process (the final resume and the unbroken reference run)."""
    argv = sys.argv[:]
    try:
        exec(compile(code, "<verb>", "exec"), {"__name__": "__verb__"})
    finally:
        sys.argv[:] = argv


def assert_same_runs(a: Path, b: Path) -> None:
    import torch

    ca, cb = checkpoints(a), checkpoints(b)
    assert ca.keys() == cb.keys() and ca, (ca, cb)
    for name in ca:
        ta, ma = load_checkpoint(ca[name])
        tb, mb = load_checkpoint(cb[name])
        assert sorted(ta) == sorted(tb), name
        for key in ta:
            torch.testing.assert_close(ta[key], tb[key], atol=0, rtol=0, msg=f"{name}: {key}")


def max_difference(a: Path, b: Path) -> float:
    """The largest |difference| between two runs' floating-point tensors (same names)."""
    worst = 0.0
    for name, folder in checkpoints(a).items():
        ta, tb = load_checkpoint(folder)[0], load_checkpoint(checkpoints(b)[name])[0]
        for key, t in ta.items():
            if t.is_floating_point() and t.numel() and key in tb:
                worst = max(worst, float((t.double() - tb[key].double()).abs().max()))
    return worst


def kill_and_resume(verb: Verb, work: Path, kills: int, seed: int, strict: bool = True) -> KillReport:
    """SIGKILL ``verb`` ``kills`` times (alternately inside a checkpoint write and at a random moment, in a
    seeded random order), resuming after each; then resume it to the end in this process and check it: every
    checkpoint after every kill loads with finite tensors and a step that never went back, the finished run
    reached ``verb.final``, no temporary file is left, and (``verb.exact``) its tensors equal an unbroken
    run's (``strict``; else the report records whether they are, and the largest difference)."""
    import random

    rng = random.Random(seed)
    report = KillReport(verb.name)
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    if verb.prepare is not None:
        verb.prepare(work / "data")
    out, seen = work / "killed", {}
    modes = ["write" if i % 2 == 0 else "random" for i in range(kills)]
    rng.shuffle(modes)
    for i, mode in enumerate(modes):
        killed, phase, landed = run_killed(verb, out, i > 0, mode, rng, work)
        report.resumes += i > 0
        if not killed:
            report.finished_early += 1
            break
        report.kills += 1
        report.during_write += landed
        if mode == "random":
            report.random_kills += 1
            report.random_during_write += landed
        if phase is not None:
            report.phases[phase] = report.phases.get(phase, 0) + 1
        report.checks += check_valid(out, verb.step_key, seen)
    run_inline(verb.code(out, True))
    report.resumes += 1
    report.checks += check_valid(out, verb.step_key, seen)
    assert seen and all(step == verb.final for step in seen.values()), (verb.name, seen)
    assert not temporaries(out), temporaries(out)
    if verb.exact:
        run_inline(verb.code(work / "unbroken", False))
        if strict:
            assert_same_runs(out, work / "unbroken")
        report.difference = max_difference(out, work / "unbroken")
        report.same_as_unbroken = report.difference == 0.0
    report.seconds = time.time() - t0
    return report


def speech_prompts(root: Path, n: int = 12) -> None:
    """Synthetic prompts laid out like the Asterisk packages the speech app reads (noise, 8 kHz)."""
    import gzip
    import wave

    import numpy as np

    if (root / "core-sounds-en.txt.gz").exists():
        return
    sounds = root / "en_US_f_Allison"
    sounds.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["; a comment", "tone: [a beep]"]  # what the reader must skip: a comment, a non-spoken prompt
    for i in range(n):
        lines.append(f"p{i:02d}: Press {i % 10} or *")
        audio = (rng.standard_normal(4000 + 400 * i) * 3000).astype(np.int16)
        with wave.open(str(sounds / f"p{i:02d}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes(audio.tobytes())
    with gzip.open(root / "core-sounds-en.txt.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")


def training_verbs(scale: int = 1) -> list[Verb]:
    """Every training verb at a small size (``scale`` multiplies the steps: more checkpoints to kill in),
    each through the function its command calls: `lm fit`, `hmm fit` (categorical and neural emissions),
    `ctc train`, `generator train` (VAE; the GAN's two phases), `colorize train`, the speech app
    (``python -m latentvar.apps.speech``) and the RBM app (``python -m latentvar.apps.rbm``)."""
    lm = dict(vocab_size=300, max_sentences=200, batch_size=8, dim=16, hidden=16, lr=3e-3, seed=3)
    lm |= dict(threads=1, every=2)
    hmm = dict(states=3, vocab_size=100, max_sentences=60, batch_tokens=300, lr=0.05, seed=1, threads=1)
    hmm |= dict(features="ngrams")
    ctc = dict(steps=20 * scale, batch=4, hidden=8, channels=4, checkpoint_every=2)
    gen = dict(data="twemoji", latent_channels=4, features=8, batch_size=16, seed=2, save_every=2)
    gen |= dict(show_progress=False, sigma_images=4)
    col = dict(data="twemoji", size=16, batch_size=4, steps=20 * scale, width=4, hidden=8, checkpoint_every=2)
    rbm = ["--hidden", "6", "--limit", "80", "--eval-every", "2", "--val-chains", "8", "--val-steps", "20",
           "--ais-chains", "16", "--ais-steps", "40", "--gibbs-steps", "1", "--quiet"]  # fmt: skip

    def speech(out, resume):
        args = ["--data", str(out.parent / "data"), "--out", str(out), "--epochs", str(6 * scale)]
        args += ["--batch", "4", "--hidden", "8", "--checkpoint-every", "1"] + ["--resume"] * resume
        return f"import sys; from latentvar.apps.speech.train import main; sys.argv = {['ctc_speech', *args]!r}; main()"

    return [
        Verb("lm fit", lambda o, r: f"from latentvar.apps.pos.lm import fit; fit({str(o)!r}, steps={20 * scale}, **{lm!r})",
             "step", 20 * scale),
        Verb("hmm fit (categorical)", lambda o, r: "from latentvar.apps.pos.train import fit; "
             f"fit({str(o)!r}, iters={6 * scale}, emission='categorical', **{hmm!r})", "iteration", 6 * scale),
        Verb("hmm fit (neural)", lambda o, r: "from latentvar.apps.pos.train import fit; "
             f"fit({str(o)!r}, iters={6 * scale}, emission='neural', **{hmm!r})", "iteration", 6 * scale),
        Verb("ctc train", lambda o, r: "from latentvar.apps.digits.model import Config; "
             f"from latentvar.apps.digits.train import train; train({str(o)!r}, Config(**{ctc!r}), resume={r})",
             "step", 20 * scale),
        Verb("generator train (vae)", lambda o, r: "from latentvar.apps.images.train import train; "
             f"train(out={str(o)!r}, objective='vae', steps={10 * scale}, resume={r}, **{gen!r})", "step", 10 * scale),
        Verb("generator train (gan)", lambda o, r: "from latentvar.apps.images.train import train; "
             f"train(out={str(o)!r}, objective='gan', steps={6 * scale}, encoder_steps={6 * scale}, resume={r}, "
             f"**{gen!r})", "encoder_step", 6 * scale),
        Verb("colorize train", lambda o, r: "from latentvar.colorize.train import TrainConfig, train; "
             f"train(TrainConfig(out={str(o)!r}, **{col!r}), resume={r}, show_progress=False)", "step", 20 * scale),
        Verb("speech app", speech, "step", 6 * 3 * scale, prepare=speech_prompts),
        Verb("rbm app", lambda o, r: "from latentvar.apps.rbm.experiment import main; "
             f"main({['--out', str(o), '--epochs', str(8 * scale), *rbm, *(['--resume'] if r else [])]!r})",
             "epoch", 8 * scale),
    ]  # fmt: skip


# -- corrupted checkpoints and full disks ---------------------------------------------------------------------
CORRUPTIONS = ("bit flip", "byte", "truncate", "zeroed block")


def sample_checkpoint(directory: Path) -> Path:
    """A checkpoint with every kind of tensor a run saves (float32/64, bfloat16, int64, uint8 RNG state,
    bool, a scalar, an empty tensor) and nested metadata."""
    import torch

    from latentvar.io import save_checkpoint

    g = torch.Generator().manual_seed(0)
    tensors = {
        "net.weight": torch.randn(16, 8, generator=g),
        "net.bias": torch.randn(8, generator=g, dtype=torch.float64),
        "net.half": torch.randn(4, 4, generator=g).to(torch.bfloat16),
        "optimizer.0.step": torch.tensor(12.0),
        "index": torch.arange(10),
        "mask": torch.rand(7, generator=g) > 0.5,
        "rng": torch.get_rng_state()[:64].clone(),
        "empty": torch.zeros(0, 3),
    }
    meta = {"kind": "fault-test", "step": 12, "history": [2.5, 1.25, 0.75], "config": {"lr": 0.003, "k": 3}}
    save_checkpoint(directory, tensors, meta)
    return directory / "checkpoint.safetensors"


def regions(data: bytes) -> dict[str, tuple[int, int]]:
    """The byte ranges of a safetensors file: the 8-byte header length, the JSON header (its tensor table
    and our metadata JSON inside it) and the tensor bytes."""
    import json
    import struct

    from latentvar.io import META_KEY

    n = struct.unpack("<Q", data[:8])[0]
    header = data[8 : 8 + n].decode("utf-8")
    meta = json.dumps(json.loads(header)["__metadata__"][META_KEY])[1:-1]  # as escaped in the header
    start = 8 + len(header[: header.index(meta)].encode("utf-8"))
    return {
        "length": (0, 8),
        "header": (8, 8 + n),
        "metadata JSON": (start, start + len(meta.encode("utf-8"))),
        "tensor data": (8 + n, len(data)),
    }


def corrupt(data: bytes, kind: str, region: tuple[int, int], rng) -> bytes:
    """``data`` with one fault of ``kind`` at a random offset in ``region``."""
    lo, hi = region
    at = rng.randrange(lo, hi)
    if kind == "bit flip":
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
    if kind == "byte":
        return data[:at] + bytes([rng.choice([b for b in range(256) if b != data[at]])]) + data[at + 1 :]
    if kind == "truncate":
        return data[:at]
    size = rng.randint(1, 4096)
    return data[:at] + bytes(min(size, len(data) - at)) + data[at + size :]


def corruption_campaign(work: Path, tries: int, seed: int, source: Path | None = None) -> dict:
    """Load ``tries`` corrupted copies of a checkpoint (``source``, or `sample_checkpoint`): each kind of
    fault at a random offset of a random region. Each load must raise a ValueError naming the file, or
    return exactly the original tensors and metadata; never another exception, never other values, never
    an unpickling (pickle and torch.load are disabled meanwhile). Returns the counts per (region, kind):
    tried, refused, loaded unchanged; raises AssertionError on the first wrong load or crash."""
    import pickle
    import random
    import shutil

    import torch

    from latentvar.io import load_checkpoint

    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    if source is None:
        source = sample_checkpoint(work / "original")
    original_tensors, original_meta = load_checkpoint(source.parent)
    data = source.read_bytes()
    spans = regions(data)
    folder = work / "corrupted"
    folder.mkdir(exist_ok=True)
    shutil.copy(source.with_suffix(".json"), folder / "checkpoint.json")
    target = folder / "checkpoint.safetensors"
    counts: dict[tuple[str, str], dict[str, int]] = {}

    def no_unpickling(*args, **kw):
        raise AssertionError("a checkpoint load tried to unpickle")

    saved = pickle.load, pickle.loads, pickle.Unpickler, torch.load
    pickle.load = pickle.loads = pickle.Unpickler = torch.load = no_unpickling
    try:
        for _ in range(tries):
            region, kind = rng.choice(list(spans)), rng.choice(CORRUPTIONS)
            bad = corrupt(data, kind, spans[region], rng)
            target.write_bytes(bad)
            row = counts.setdefault((region, kind), {"tried": 0, "refused": 0, "unchanged": 0})
            row["tried"] += 1
            try:
                tensors, meta = load_checkpoint(folder)
            except ValueError as err:
                assert str(target) in str(err), f"the error does not name the file: {err}"
                row["refused"] += 1
                continue
            except Exception as err:  # noqa: BLE001 -- the campaign's point: report it
                raise AssertionError(f"{kind} in {region}: {type(err).__name__}: {err}") from err
            same = meta == original_meta and sorted(tensors) == sorted(original_tensors)
            same = same and all(
                tensors[k].dtype == original_tensors[k].dtype and torch.equal(tensors[k], original_tensors[k])
                for k in tensors
            )
            assert same, f"{kind} in {region} at a random offset loaded other values without an error"
            row["unchanged"] += 1
    finally:
        pickle.load, pickle.loads, pickle.Unpickler, torch.load = saved
    return counts


def fill_disk(folder: Path) -> Path:
    """Fill the file system holding ``folder`` (a small tmpfs) with one file; returns it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 1):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return filler


def small_tmpfs(mount_point: Path, size: str = "2m"):
    """A context manager mounting a tmpfs of ``size`` at ``mount_point`` (needs root), or None where
    mount is not allowed here."""
    import contextlib

    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True
    )
    if done.returncode != 0:
        return None

    @contextlib.contextmanager
    def mounted():
        try:
            yield mount_point
        finally:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)

    return mounted()
