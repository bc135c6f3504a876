"""The CLI half of issue 15's bad-input campaign: every `latentvar` verb x each kind of bad input to its
flags, as explicit cases. Shared by tests/test_cli_bad_input.py (every case, in `make test`) and
bench/cli_bad_input_campaign.py (the table of docs/reliability.md).

The rule: a bad flag ends with exit status 2 and stderr starting `error: <flag>: ` (the flag's long name
as typed, or its Python spelling with `_` -- the messages of the API name `batch_size`), or with exit 0
and a documented valid result. Anything else -- exit 1, a traceback, another flag named, or a verb that
starts real work on the bad value (stopped after `TIME_LIMIT` seconds) -- is a failure.

Paths in the arguments are placeholders filled by `fixtures(tmp)`: {file} an existing regular file, {dir}
an existing empty folder, {missing} a path that does not exist, {corrupt_run} a run folder whose
checkpoint is garbage, {corrupt_png} a `.png` file that is not an image, {bad_images} a folder holding
such a file."""

from __future__ import annotations

import contextlib
import io
import re
import signal
from dataclasses import dataclass
from pathlib import Path

KINDS = {
    "type": "wrong type",
    "count": "negative / zero count",
    "absurd": "absurd size",
    "float": "NaN / ±inf / out of range",
    "missing": "missing / non-existent path",
    "kind": "file for a folder / folder for a file",
    "choice": "unknown choice",
    "corrupt": "corrupt input file",
}
TIME_LIMIT = 20  # seconds: a refusal takes well under one; a verb still running has started real work
HUGE = str(10**30)  # beyond int64: no count, size or step number of any verb


@dataclass(frozen=True)
class Case:
    verb: tuple[str, ...]
    kind: str
    args: tuple[str, ...]
    flag: str  # the flag the error must name (long name, no dashes)

    @property
    def id(self) -> str:
        return f"{' '.join(self.verb)} [{self.kind}] {' '.join(self.args)}"


def _ints(verb, flag, base=(), minimum=1, opt=None):
    """wrong type, below the minimum, absurd -- for an integer flag."""
    opt = opt or f"--{flag}"
    out = [
        Case(verb, "type", (*base, opt, "abc"), flag),
        Case(verb, "type", (*base, opt, "1.5"), flag),
        Case(verb, "count", (*base, opt, str(minimum - 1)), flag),
        Case(verb, "absurd", (*base, opt, HUGE), flag),
    ]
    if minimum - 1 != -1:
        out.append(Case(verb, "count", (*base, opt, "-1"), flag))
    return out


def _floats(verb, flag, base=(), positive=True):
    bad = ["nan", "inf", "-inf"] + (["0", "-1"] if positive else [])
    return [Case(verb, "type", (*base, f"--{flag}", "abc"), flag)] + [
        Case(verb, "float", (*base, f"--{flag}", v), flag) for v in bad
    ]


def _choice(verb, flag, base=()):
    return [Case(verb, "choice", (*base, f"--{flag}", "bogus"), flag)]


def _run_in(verb, flag="run", base=()):
    """A run folder to read: missing, a file, an empty folder, a corrupt checkpoint."""
    return [
        Case(verb, "missing", (*base, f"--{flag}", "{missing}"), flag),
        Case(verb, "kind", (*base, f"--{flag}", "{file}"), flag),
        Case(verb, "missing", (*base, f"--{flag}", "{dir}"), flag),
        Case(verb, "corrupt", (*base, f"--{flag}", "{corrupt_run}"), flag),
    ]


def _out_dir(verb, flag="out", base=()):
    return [Case(verb, "kind", (*base, f"--{flag}", "{file}"), flag)]


def _out_file(verb, flag, base=()):
    return [
        Case(verb, "kind", (*base, f"--{flag}", "{dir}"), flag),
        Case(verb, "missing", (*base, f"--{flag}", "{file}/x.out"), flag),
    ]


def _json(verb, base=()):
    return _out_file(verb, "json", base)


def _cases() -> list[Case]:
    c: list[Case] = []
    # mixture fit, mixture demo, demo
    v = ("mixture", "fit")
    c += _choice(v, "data") + _choice(v, "covariance") + _choice(v, "method")
    c += _ints(v, "components", opt="-k") + _ints(v, "max-iter")
    c += [Case(v, "type", ("--seed", "abc"), "seed")]
    c += _out_dir(v) + _json(v)
    for v in [("mixture", "demo"), ("demo",)]:
        c += _out_dir(v) + _json(v)
    # colorize
    v = ("colorize", "train")
    base = ("--out", "{dir}/run")
    c += [Case(v, "missing", ("--data", "{missing}", *base), "data")]
    c += [Case(v, "kind", ("--data", "{file}", *base), "data")]
    c += [Case(v, "missing", ("--data", "{dir}", *base), "data")]
    c += [Case(v, "corrupt", ("--data", "{bad_images}", *base), "data")]
    for flag in ("model", "arch", "device", "lr-decay", "select", "prior", "colour-law"):
        c += _choice(v, flag, base)
    for flag, low in [
        ("size", 1), ("steps", 1), ("devices", 1), ("batch-size", 1), ("checkpoint-every", 1),
        ("width", 1), ("val-every", 0), ("patience", 0), ("smooth-steps", 0), ("workers", 0), ("accumulate", 1),
        ("val-images", 1), ("depth", 0),
    ]:  # fmt: skip
        c += _ints(v, flag, base, minimum=low)
    c += _ints(v, "segments", base, opt="-k")
    c += _floats(v, "lr", base)
    for flag in ("balance", "invariance", "confidence", "superpixels"):
        c += _floats(v, flag, base, positive=False) + [Case(v, "float", (*base, f"--{flag}", "-1"), flag)]
    c += [Case(v, "float", (*base, "--superpixels", "1e9"), "superpixels")]
    c += [Case(v, "float", (*base, "--prior", "lightness", "--superpixels", "100"), "superpixels")]
    c += _run_in(v, "init", base)
    c += [Case(v, "missing", (), "out")] + _out_dir(v)
    c += [Case(v, "corrupt", ("--out", "{corrupt_run}", "--resume"), "run")]
    v = ("colorize", "apply")
    base = ("--out", "{dir}/o")
    c += [Case(v, "missing", ("{missing}", *base), "images"), Case(v, "kind", ("{dir}", *base), "images")]
    c += [Case(v, "corrupt", ("{corrupt_png}", *base), "images")]
    c += [Case(v, "missing", ("{file}",), "out")] + _out_dir(v, base=("{png}",))
    c += _run_in(v, base=("{png}", *base)) + _choice(v, "run", ("{png}", *base))
    c += _ints(v, "samples", ("{png}", *base), minimum=0)
    c += _floats(v, "temperature", ("{png}", *base)) + _choice(v, "device", ("{png}", *base))
    c += _floats(v, "rebalance", ("{png}", *base), positive=False)
    c += _floats(v, "superpixels", ("{png}", *base), positive=False)
    c += [Case(v, "float", ("{png}", *base, "--superpixels", "-1"), "superpixels")]
    c += [Case(v, "float", ("{png}", *base, "--run", "twemoji", "--superpixels", "10"), "superpixels")]
    c += [Case(v, "float", ("{png}", *base, "--rebalance", "-0.5"), "rebalance")]
    v = ("colorize", "eval")
    grey = ("--baseline", "grey")
    c += [Case(v, "missing", ("--data", "{missing}", *grey), "data")]
    c += [Case(v, "kind", ("--data", "{file}", *grey), "data")]
    c += [Case(v, "corrupt", ("--data", "{bad_images}", *grey), "data")]
    c += _run_in(v) + _choice(v, "baseline") + _choice(v, "split", grey) + _choice(v, "device", grey)
    c += [Case(v, "missing", ("--labels", "{missing}", *grey), "labels")]
    c += [Case(v, "kind", ("--labels", "{file}", *grey), "labels")]
    c += [Case(v, "missing", ("--masks", "{missing}", "--data", "{dir}"), "masks")]
    c += [Case(v, "kind", ("--masks", "{file}", "--data", "{dir}"), "masks")]
    c += [Case(v, "kind", ("--masks", "{dir}", *grey), "masks")]  # segments need a latent model
    c += _ints(v, "size", grey) + _floats(v, "temperature", grey) + _json(v, grey)
    c += _floats(v, "rebalance", grey, positive=False) + [
        Case(v, "float", (*grey, "--rebalance", "-1"), "rebalance")
    ]
    c += [Case(v, "kind", (*grey, "--rebalance", "0.5"), "rebalance")]  # grey predicts one colour: no law
    c += _ints(v, "bootstrap", grey, minimum=0)
    v = ("colorize", "demo")
    c += _ints(v, "steps") + _out_dir(v) + _json(v)
    for name in ("openmoji", "tuxpaint", "photos"):
        v = ("colorize", "prepare", name)
        c += [Case(v, "missing", (), "out")] + _out_dir(v)
    c += [Case(("colorize", "prepare", "photos"), "kind", ("--out", "{dir}/o", "--downloads", "{file}"),
               "downloads")]  # fmt: skip
    # hmm
    v = ("hmm", "fit")
    base = ("--out", "{dir}/run")
    for flag in ("data", "emission", "features", "init"):
        c += _choice(v, flag, base)
    c += _ints(v, "states", base, opt="-k") + _ints(v, "vocab", base) + _ints(v, "max-sentences", base)
    c += _ints(v, "iters", base) + _ints(v, "batch-tokens", base) + _ints(v, "threads", base)
    c += _floats(v, "lr", base) + _out_dir(v)
    c += [Case(v, "corrupt", ("--out", "{corrupt_run}", "--resume"), "run")]
    v = ("hmm", "eval")
    c += _run_in(v) + _choice(v, "split", ("--run", "{dir}")) + _ints(v, "max-sentences", ("--run", "{dir}"))
    c += [Case(v, "missing", (), "run")] + _json(v, ("--run", "{dir}"))
    v = ("hmm", "supervised")
    c += _choice(v, "data") + _ints(v, "vocab") + _out_dir(v) + _json(v)
    v = ("hmm", "report")
    c += _run_in(v)
    for flag in (
        "lm",
        "extra",
    ):  # a folder with no / a corrupt checkpoint: --run (not trainable here) fails first
        c += [x for x in _run_in(v, flag, ("--run", "{dir}")) if x.args[-1] in ("{missing}", "{file}")]
    c += _out_file(v, "out", ("--run", "{dir}"))
    # lm
    v = ("lm", "fit")
    base = ("--out", "{dir}/run")
    c += _choice(v, "data", base)
    for flag in ("vocab", "max-sentences", "steps", "batch-size", "dim", "hidden", "threads"):
        c += _ints(v, flag, base)
    c += _floats(v, "lr", base) + _out_dir(v)
    c += [Case(v, "corrupt", ("--out", "{corrupt_run}", "--resume"), "run")]
    v = ("lm", "eval")
    c += _run_in(v) + _choice(v, "split", ("--run", "{dir}")) + _ints(v, "max-sentences", ("--run", "{dir}"))
    c += _json(v, ("--run", "{dir}"))
    v = ("lm", "sample")
    c += _run_in(v) + _ints(v, "n", ("--run", "{dir}"), opt="-n") + _ints(v, "max-length", ("--run", "{dir}"))
    c += [Case(v, "type", ("--run", "{dir}", "--seed", "abc"), "seed")]
    # ctc
    v = ("ctc", "train")
    base = ("--out", "{dir}/run")
    c += _ints(v, "steps", base) + [Case(v, "type", (*base, "--seed", "abc"), "seed")] + _out_dir(v)
    c += [Case(v, "corrupt", ("--out", "{corrupt_run}", "--resume"), "run")]
    v = ("ctc", "eval")
    c += _run_in(v) + _ints(v, "beam-width", ("--run", "{dir}")) + _json(v, ("--run", "{dir}"))
    v = ("ctc", "align")
    c += _run_in(v) + _ints(v, "lines", ("--run", "{dir}")) + _out_dir(v, base=("--run", "{dir}"))
    # generator
    v = ("generator", "train")
    base = ("--objective", "vae", "--out", "{dir}/run")
    c += _choice(v, "data", base) + _choice(v, "objective", ("--out", "{dir}/run"))
    c += [Case(v, "missing", ("--out", "{dir}/run"), "objective")]
    for flag, low in [
        ("steps", 1), ("encoder-steps", 0), ("latent-channels", 1), ("features", 1), ("threads", 1),
        ("sigma-images", 1),
    ]:  # fmt: skip
        c += _ints(v, flag, base, minimum=low)
    c += _out_dir(v, base=("--objective", "vae"))
    c += [Case(v, "corrupt", ("--objective", "vae", "--out", "{corrupt_run}", "--resume"), "run")]
    v = ("generator", "sample")
    c += _run_in(v) + _ints(v, "n", ("--run", "{dir}"), opt="-n") + _out_file(v, "out", ("--run", "{dir}"))
    v = ("generator", "loglik")
    base = ("--run", "{dir}")
    c += _run_in(v) + _choice(v, "data", base) + _choice(v, "estimators", base)
    c += [Case(v, "choice", (*base, "--estimators", ","), "estimators")]
    c += _choice(v, "split", base) + _choice(v, "ais-init", base) + _choice(v, "ais-schedule", base)
    for flag in ("num-images", "num-samples", "ais-steps", "ais-chains", "ais-leapfrog", "threads"):
        c += _ints(v, flag, base)
    c += _ints(v, "ais-max-cost", (*base, "--ais-schedule", "adaptive"))
    c += [Case(v, "choice", (*base, "--ais-max-cost", "100"), "ais-max-cost")]  # needs the adaptive schedule
    c += _floats(v, "ais-step-size", base) + _json(v, base)
    v = ("generator", "report")
    c += _run_in(v, "vae") + _run_in(v, "gan") + _ints(v, "num-images") + _out_dir(v)
    # serve
    v = ("serve",)
    c += [Case(v, "choice", ("--host", "no.such.host.invalid"), "host")]
    c += _ints(v, "port", minimum=0) + [Case(v, "count", ("--port", "65536"), "port")]
    c += _ints(v, "workers") + _ints(v, "store-mb", minimum=16) + _floats(v, "ttl")
    c += _run_in(v) + _choice(v, "run") + _choice(v, "device")
    c += [Case(v, "choice", ("--allowed-host", "a/b"), "allowed-host")]
    c += [Case(v, "choice", ("--token", "short"), "token")]
    c += _ints(("demo",), "steps")
    for v, base in [
        (("colorize", "train"), ("--out", "{dir}/run")), (("hmm", "fit"), ("--out", "{dir}/run")),
        (("lm", "fit"), ("--out", "{dir}/run")), (("generator", "train"), ("--objective", "vae", "--out", "{dir}/run")),
        (("generator", "sample"), ("--run", "{dir}")), (("generator", "loglik"), ("--run", "{dir}")),
    ]:  # fmt: skip
        c += [Case(v, "type", (*base, "--seed", "abc"), "seed")]
    return c


CASES = _cases()


def fixtures(tmp: Path) -> dict[str, str]:
    """Create the placeholders' files under `tmp`; returns {placeholder: path}."""
    from PIL import Image

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "file.txt").write_text("not a folder\n")
    (tmp / "empty").mkdir(exist_ok=True)
    run = tmp / "corrupt_run"
    run.mkdir(exist_ok=True)
    (run / "checkpoint.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    (run / "checkpoint.json").write_text("{not json")
    (tmp / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a PNG")
    bad = tmp / "bad_images"
    bad.mkdir(exist_ok=True)
    (bad / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a PNG")
    Image.new("RGB", (8, 8), (120, 30, 200)).save(tmp / "ok.png")
    return {
        "{file}": str(tmp / "file.txt"),
        "{dir}": str(tmp / "empty"),
        "{missing}": str(tmp / "does-not-exist"),
        "{corrupt_run}": str(run),
        "{corrupt_png}": str(tmp / "corrupt.png"),
        "{bad_images}": str(bad),
        "{png}": str(tmp / "ok.png"),
    }


class _TooLong(BaseException):
    """The verb was still running after TIME_LIMIT: it started work on a bad value."""


@dataclass
class Outcome:
    status: str  # "refused" (exit 2 naming the flag), "valid" (exit 0), "failure"
    code: int | None
    stderr: str


def _names_flag(stderr: str, flag: str) -> bool:
    names = {flag, flag.replace("-", "_")}
    return any(stderr.startswith(f"error: {n}: ") for n in names)


def run_case(case: Case, paths: dict[str, str]) -> Outcome:
    """Run `latentvar ARGS` in-process (latentvar.cli._errors.run, the entry point's own code)."""
    from latentvar.cli import app
    from latentvar.cli._errors import run

    args = list(case.verb)
    for a in case.args:
        for key, value in paths.items():
            a = a.replace(key, value)
        args.append(a)
    err, out = io.StringIO(), io.StringIO()

    def stop(signum, frame):
        raise _TooLong

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(TIME_LIMIT)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = run(app, args)
    except _TooLong:
        return Outcome("failure", None, f"still running after {TIME_LIMIT} s (started work)")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = err.getvalue()
    if code == 2 and _names_flag(text, case.flag):
        return Outcome("refused", code, text)
    if code == 0:
        return Outcome("valid", code, text)
    return Outcome("failure", code, text)


def first_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().splitlines()[0] if text.strip() else "")[:200]


def cli_verbs(command=None, prefix=()):
    """(verb words, click command) for every verb of `latentvar`, groups walked recursively."""
    import typer.main

    from latentvar.cli import app

    command = command or typer.main.get_command(app)
    for name, sub in getattr(command, "commands", {}).items():
        if hasattr(sub, "commands"):
            yield from cli_verbs(sub, (*prefix, name))
        else:
            yield (*prefix, name), sub
