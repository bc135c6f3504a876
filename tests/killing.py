"""Shared by the resume tests: run a command in a fresh interpreter and SIGKILL it once a checkpoint exists."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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
