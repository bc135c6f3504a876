"""The package as a user gets it: build the wheel, install it into a fresh virtual environment (no system
site-packages, no dev extras), and run the command from there -- a package-data file left out of the
wheel or an import that pyproject.toml does not declare fails here, not on a user's machine."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import latentvar

ROOT = Path(__file__).resolve().parents[1]
# 2.13.0 is the CPU build on these machines' disk (the Makefile installs it first for the same reason)
TORCH = "torch==2.13.0"


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_the_wheel_installs_and_runs_in_a_fresh_environment(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT])
    (wheel,) = wheels.glob("latentvar-*.whl")
    assert wheel.name.startswith(f"latentvar-{latentvar.__version__}-")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    dist_info = f"latentvar-{latentvar.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "latentvar/py.typed" in names
    tracked = subprocess.run(["git", "ls-files", "src/latentvar"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode == 0:  # every file of the package in git, data included, is in the wheel
        missing = {f.removeprefix("src/") for f in tracked.stdout.split()} - names
        assert not missing, f"left out of the wheel: {sorted(missing)}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    py, exe = venv / "bin" / "python", venv / "bin" / "latentvar"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["TQDM_DISABLE"] = "1"
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, TORCH], env=env)
    _run([*pip, wheel], env=env)  # the runtime dependencies only: no [dev], no [prepare]

    def cli(*args):
        return _run([exe, *args], env=env, cwd=tmp_path)  # cwd outside the checkout: no src/ in reach

    where = _run([py, "-c", "import latentvar; print(latentvar.__file__)"], env=env, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    assert "pytest" not in _run([py, "-m", "pip", "list"], env=env).stdout  # really without the dev extras

    assert "colorize" in cli("--help").stdout
    assert cli("--version").stdout == f"latentvar {latentvar.__version__}\n"
    # the shipped photo model and a bundled photo: package data, torch, PIL, numba all from the wheel
    photo = next(p for p in (ROOT / "src/latentvar/data/photo_examples").glob("*.jpg"))
    out = tmp_path / "colour"
    cli("colorize", "apply", photo, "--out", out, "--samples", "1")
    assert (out / f"{photo.stem}_color.png").stat().st_size > 1000
    fit = cli("mixture", "fit", "--data", "iris", "-k", "3", "--out", tmp_path / "mix", "--json", "-")
    assert json.loads(fit.stdout)["components"] == 3
    # every room imports with the declared dependencies alone; the web app's page is there
    check = (
        "import latentvar.serve.app as a, latentvar.hmm, latentvar.ctc, latentvar.estimate, latentvar.loopy;"
    )
    _run([py, "-c", check + "assert (a.STATIC / 'index.html').is_file()"], env=env, cwd=tmp_path)
