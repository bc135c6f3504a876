"""A colorization run's metadata is input (issue 23): a fuzz campaign edits one field of the shipped photo
model's checkpoint at a time -- and recomputes its checksum, as anyone can -- then runs `colorize apply`
on it. Every case must end `error: run: ...` with exit 2 before any model is built, and the whole campaign
must stay under twice the memory of applying the shipped model itself. The loader also checks a file's
size against its safetensors header before reading it."""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentvar.cli import app as cli
from latentvar.cli._errors import run
from latentvar.colorize.shipped import shipped_path
from latentvar.io import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
NAN = float("nan")
DROP = object()  # a case value: the field removed


def _set(meta: dict, tensors: dict, field: str, value) -> None:
    if field.startswith("tensor:"):
        name = field[len("tensor:") :]
        if value is DROP:
            del tensors[name]
        else:
            tensors[name] = value(tensors.get(name))
        return
    *parents, last = field.split(".")
    target = meta
    for key in parents:
        target = target[key]
    if value is DROP:
        target.pop(last, None)
    else:
        target[last] = value


def cases() -> list[tuple[str, object]]:
    """(field, bad value): every field Colorizer reads, each with wrong types and out-of-range values."""
    ints = lambda big: [0, -1, big, "8", 8.5, True, None, [8]]  # noqa: E731
    return [
        *[("work_side", v) for v in [1_000_000, 0, -16, 15, "176", 176.5, None, [176]]],
        *[("config.width", v) for v in ints(10**7)],
        *[("config.segments", v) for v in [*ints(10**9), 256]],
        *[("config.hidden", v) for v in ints(10**9)],
        *[("config.size", v) for v in [*ints(10**6), 3]],
        *[("config", v) for v in [DROP, [], "latent", None, 7]],
        *[("config.model", v) for v in [DROP, "latent2", 3, "per-pixel"]],
        *[("config.arch", v) for v in ["gpu", 3, ["photo"]]],
        *[("config.colour_law", v) for v in ["quadratic", 3, None, ["levels"]]],
        *[("config.prior", v) for v in ["bands", 3]],
        *[("config.smooth_steps", v) for v in [-1, 9, "3", None]],
        *[("config.superpixels", v) for v in [-1, 1e9, NAN, "450", None, True, [450]]],
        *[("kind", v) for v in [DROP, "colorize-foo", 7, None]],
        *[("temperature", v) for v in [0, -1, NAN, float("inf"), 1e300, "0.5", None]],
        *[("rebalance", v) for v in [-1, NAN, 1e9, "x", None]],
        *[("bin_prior", v) for v in [[], [0.1] * 5, "x", {}, 3]],
        ("bin_prior", "negative"),
        ("bin_prior", "nan"),
        *[("num_bins", v) for v in [5, "261", -1, 10**12]],
        ("tensor:model.bin_centres", DROP),
        ("tensor:model.bin_centres", lambda t: torch.zeros(261, 3)),
        ("tensor:model.bin_centres", lambda t: torch.full((261, 2), NAN)),
        ("tensor:model.bin_centres", lambda t: torch.zeros(1, 2)),
        ("tensor:model.bin_centres", lambda t: t * 1e6),
        ("tensor:model.model.network.segment_head.weight", lambda t: t[:-1]),
        ("tensor:model.model.network.segment_head.weight", DROP),
        ("tensor:model.model.network.segment_head.bias", lambda t: t.to(torch.int64)),
        ("tensor:model.model.network.colour_head.0.weight", lambda t: t.fill_(NAN)),
        ("tensor:model.extra", lambda t: torch.zeros(3)),
    ]


def write_case(base: tuple[dict, dict], field: str, value, out: Path) -> Path:
    tensors, meta = {k: v.clone() for k, v in base[0].items()}, copy.deepcopy(base[1])
    if field == "bin_prior" and value in ("negative", "nan"):
        value = [-0.1 if value == "negative" else NAN] + meta["bin_prior"][1:]
    _set(meta, tensors, field, value)
    save_checkpoint(out, tensors, meta)  # the checksum recomputed: an edit, not corruption
    return out


@pytest.fixture(scope="module")
def base():
    tensors, meta = load_checkpoint(shipped_path("photo"))
    return tensors, meta


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_every_bad_field_is_error_run_exit_2(base, image, tmp_path, capsys):
    failures = []
    for i, (field, value) in enumerate(cases()):
        folder = write_case(base, field, value, tmp_path / f"case{i}")
        code = run(cli, ["colorize", "apply", str(image), "--run", str(folder), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip()
        if code != 2 or not err.startswith("error: run: ") or "\n" in err:
            failures.append((field, repr(value)[:40], code, err[:200]))
    assert failures == [], failures
    assert not list((tmp_path / "o").glob("*.png"))  # nothing written for any of them


def test_the_message_names_the_field(base, image, tmp_path, capsys):
    for field, value, message in [
        ("work_side", 1_000_000, "error: run: work_side: expected an integer in 16..512, got 1000000"),
        ("config.width", 10**7, "error: run: config.width: expected an integer in 1..1024, got 10000000"),
        ("config.segments", 10**9, "error: run: config.segments: expected an integer in 1..255"),
        ("config", DROP, "error: run: config: expected a JSON object of the training settings"),
        ("tensor:model.bin_centres", DROP, "error: run: model.bin_centres: expected the ab bin centres"),
        ("temperature", NAN, "error: run: temperature: expected a number in (0, 100], got nan"),
        (
            "config.colour_law",
            "x",
            "error: run: config.colour_law: expected one of ['linear', 'levels', 'global']",
        ),
    ]:
        folder = write_case(base, field, value, tmp_path / field.replace(":", "_"))
        assert run(cli, ["colorize", "apply", str(image), "--run", str(folder), "--out", str(tmp_path)]) == 2
        assert capsys.readouterr().err.startswith(message), field


def test_the_shipped_models_pass_the_checks():
    from latentvar.colorize import Colorizer
    from latentvar.colorize.shipped import SHIPPED

    assert "photo-levels" in SHIPPED
    for name in SHIPPED:
        assert Colorizer.load(name).kind == "latent", name
    assert Colorizer.load("photo-levels").model.net.colour_law == "levels"


CAMPAIGN = """
import sys
from pathlib import Path
from latentvar.cli import app
from latentvar.cli._errors import run
from latentvar.serve.memory import rss_bytes
folders, image, out = sys.argv[1:-2], sys.argv[-2], sys.argv[-1]
codes = [run(app, ["colorize", "apply", image, "--run", f, "--out", out, "--samples", "1"]) for f in folders]
print(codes, rss_bytes()[1])
"""


@pytest.mark.slow
def test_the_campaign_stays_under_twice_the_shipped_models_memory(base, image, tmp_path):
    folders = [str(write_case(base, f, v, tmp_path / f"c{i}")) for i, (f, v) in enumerate(cases())]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}

    def peak(folder_args):
        args = [sys.executable, "-c", CAMPAIGN, *folder_args, str(image), str(tmp_path / "o")]
        r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
        codes, rss = r.stdout.strip().rsplit(" ", 1)
        return json.loads(codes), int(rss)

    shipped_codes, shipped = peak([str(shipped_path("photo"))])
    codes, campaign = peak(folders)
    assert shipped_codes == [0] and set(codes) == {2}
    assert campaign <= 2 * shipped, (campaign, shipped)


# -- the loader: the file's size against its header ------------------------------------------------------


def test_a_file_larger_or_smaller_than_its_header_is_refused_before_reading(base, tmp_path):
    folder = tmp_path / "r"
    save_checkpoint(folder, {"w": torch.zeros(4)}, {"kind": "x"})
    path = folder / "checkpoint.safetensors"
    good = path.read_bytes()
    with open(path, "r+b") as f:  # a sparse 64 GiB tail: refused by its size, never read
        f.truncate(64 << 30)
    with pytest.raises(
        ValueError, match=r"corrupt or truncated \(its header describes \d[\d,]* bytes, the file"
    ):
        load_checkpoint(folder)
    path.write_bytes(good[:-3])
    with pytest.raises(ValueError, match=r"corrupt or truncated \(its header describes"):
        load_checkpoint(folder)
    path.write_bytes(struct.pack("<Q", 2**60) + good[8:])
    with pytest.raises(ValueError, match=r"a header of 1,152,921,504,606,846,976 bytes in a file of"):
        load_checkpoint(folder)
    path.write_bytes(good)
    assert load_checkpoint(folder)[1] == {"kind": "x"}
    with pytest.raises(ValueError, match=r"over the 10 this loader reads"):
        load_checkpoint(folder, max_bytes=10)
