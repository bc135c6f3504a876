"""Checks of a verb's flags before any work starts, each naming the flag as typed (`error: <flag>: ...`,
exit 2 through `_errors.user_errors`): counts, numbers, choices, and the kind of each path (a run folder
to read, a folder or a file to write)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

# No count of any verb comes near this; beyond it torch overflows or its allocator fails (latentvar._checks).
MAX_COUNT = 2**40


def count(flag: str, value: int | None, minimum: int = 1, maximum: int = MAX_COUNT) -> None:
    """An integer flag in [minimum, maximum]; None (an optional flag left out) passes."""
    if value is None:
        return
    if value < minimum:
        raise ValueError(f"{flag}: expected an integer >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{flag}: expected at most {maximum:,}, got {value:,}")


def positive(flag: str, value: float | None) -> None:
    """A positive finite number; None passes."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{flag}: expected a positive finite number, got {value}")


def non_negative(flag: str, value: float | None) -> None:
    """A finite number >= 0; None passes."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{flag}: expected a finite number >= 0, got {value}")


def choice(flag: str, value: str | None, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value is not None and value not in choices:
        raise ValueError(f"{flag}: expected one of {list(choices)}, got {value!r}")


def counts(*pairs: tuple[str, int | None]) -> None:
    """`count` (at least 1) for each (flag, value)."""
    for flag, value in pairs:
        count(flag, value)


def training_out(out: Path | str, resume: bool) -> None:
    """A training verb's --out: a folder (or not there yet), and with --resume a checkpoint there that
    loads -- named `run:`, as the training verbs' loader always has."""
    out_dir("out", out)
    if resume:
        checkpoint("run", out, resume_only=True)


def run_dir(flag: str, path: Path | str | None) -> None:
    """A run folder to read: it must exist and be a folder (what it holds, the loader checks)."""
    if path is None:
        return
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{flag}: {path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{flag}: {path} is not a folder")


def out_dir(flag: str, path: Path | str | None) -> None:
    """A folder to write into: it may not exist yet, but it must not be a file, nor lie under one."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {path} is a file, expected a folder")
    _parents(flag, path)


def out_file(flag: str, path: Path | str | None) -> None:
    """A file to write (`-` for --json is stdout): not a folder, not under a file."""
    if path is None or str(path) == "-":
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag}: {path} is a folder, expected a file")
    _parents(flag, path)


def _parents(flag: str, path: Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag}: {parent} is a file, so {path} cannot be written")
            return


def device(flag: str, value: str | None) -> None:
    """cpu, cuda or cuda:N -- and cuda only where torch sees a GPU."""
    if value is None or value == "cpu":
        return
    if not (value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit())):
        raise ValueError(f"{flag}: expected cpu, cuda or cuda:N, got {value!r}")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"{flag}: {value!r} asked for, but torch sees no CUDA device")


SHIPPED_MODELS = ("photo", "twemoji", "photo-lightness", "photo-levels")


def model_run(flag: str, value: str | None) -> None:
    """A colorizer: a shipped model's name, or a run folder."""
    if value is not None and value not in SHIPPED_MODELS:
        if not Path(value).exists():
            raise ValueError(
                f"{flag}: {value} is neither a shipped model ({', '.join(SHIPPED_MODELS)}) nor an existing run "
                "folder"
            )
        run_dir(flag, value)


@contextmanager
def run_named(flag: str):
    """The loader's `run: ...` errors (a corrupt or missing checkpoint) named after ``flag``, the option the
    folder came from (e.g. `generator report --vae`). Training verbs pass "run": their --out is the run
    folder, and `error: run: <file> is corrupt ...` is what they have always said."""
    try:
        yield
    except ValueError as err:
        text = str(err)
        if text.startswith("run: "):
            raise ValueError(f"{flag}: {text[len('run: ') :]}") from None
        raise


def checkpoint(flag: str, path: Path | str | None, resume_only: bool = False) -> None:
    """A run folder whose checkpoint must load (exists, not corrupt), checked before any work starts.
    ``resume_only``: a training verb's --out, checked only when it already holds a checkpoint."""
    if path is None:
        return
    path = Path(path)
    if resume_only and not (path / "checkpoint.safetensors").exists():
        return
    run_dir(flag, path)
    from latentvar.io import load_checkpoint

    try:
        with run_named(flag):
            load_checkpoint(path)
    except FileNotFoundError as err:
        raise ValueError(f"{flag}: {str(err).removeprefix('run: ')}") from None


def input_files(flag: str, paths: Iterable[Path | str]) -> None:
    """Files to read, each a readable regular file; every one that is not is named with what it is
    instead (missing, a folder, a FIFO or device, a broken link, a symbolic link loop, unreadable)."""
    import errno
    import os
    import stat

    problems = []
    for path in map(Path, paths):
        try:
            mode = os.stat(path).st_mode
        except OSError as err:
            if err.errno == errno.ELOOP:
                problems.append(f"{path} is a symbolic link loop")
            elif err.errno == errno.ENOENT and os.path.lexists(path):
                problems.append(f"{path} is a symbolic link to nothing ({os.readlink(path)})")
            elif err.errno in (errno.ENOENT, errno.ENOTDIR):
                problems.append(f"{path} does not exist")
            else:
                problems.append(f"{path} cannot be examined ({err.strerror})")
            continue
        if stat.S_ISDIR(mode):
            problems.append(f"{path} is a folder, expected an image file")
        elif not stat.S_ISREG(mode):
            problems.append(f"{path} is not a regular file (a FIFO, socket or device)")
        elif not os.access(path, os.R_OK):
            problems.append(f"{path} cannot be read (permission denied)")
    if problems:
        raise ValueError(f"{flag}: " + "; ".join(problems))


def writable_dir(flag: str, path: Path | str) -> None:
    """A folder to write into, made now and probed with a temporary file, so a --out that cannot be
    written is refused before any work starts (not after the model ran)."""
    import os
    import tempfile

    out_dir(flag, path)
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".latentvar-probe.")
    except OSError as err:
        raise ValueError(f"{flag}: cannot write into {path} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)


def distinct_stems(paths: Iterable[Path]) -> tuple[list[str], list[str]]:
    """One output stem per input file, distinct: the file's own stem, or ``<stem>-2``, ``<stem>-3`` ... for
    a later file with a stem taken already (``a/photo.jpg`` and ``b/photo.png``). Returns the stems and a
    note for each renamed file."""
    paths = list(paths)
    taken = {p.stem for p in paths}
    seen: set[str] = set()
    stems, notes = [], []
    for path in paths:
        stem = path.stem
        if stem in seen:
            i = 2
            while f"{path.stem}-{i}" in taken or f"{path.stem}-{i}" in seen:
                i += 1
            stem = f"{path.stem}-{i}"
            notes.append(f"{path} is written as {stem}_*.png ({path.stem}_* is an earlier image's)")
        seen.add(stem)
        stems.append(stem)
    return stems, notes
