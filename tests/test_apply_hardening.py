"""`colorize apply` on awkward inputs (issue 23, item 7): two images with one stem both written, an
unreadable image skipped and reported (exit 2 at the end, the rest written), each bad path named for what
it is, and a --out that cannot be written refused before the model loads."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from latentvar.cli import app as cli
from latentvar.cli._errors import run
from latentvar.colorize import Colorizer


def photo(path, seed: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return str(path)


def apply(*args) -> int:
    return run(cli, ["colorize", "apply", *map(str, args), "--run", "twemoji", "--samples", "1"])


def test_two_images_with_one_stem_are_both_written(tmp_path, capsys):
    a, b = photo(tmp_path / "a" / "photo.jpg", 0), photo(tmp_path / "b" / "photo.png", 1)
    c = photo(tmp_path / "c" / "photo-2.png", 2)  # the name a rename would take: skipped over
    out = tmp_path / "out"
    assert apply(a, b, c, "--out", out) == 0
    assert f"note: {b} is written as photo-3_*.png" in capsys.readouterr().err
    colours = {p.name for p in out.glob("*_color.png")}
    assert colours == {"photo_color.png", "photo-2_color.png", "photo-3_color.png"}
    first = np.asarray(Image.open(out / "photo_color.png"))
    third = np.asarray(Image.open(out / "photo-3_color.png"))
    assert not np.array_equal(first, third)  # b's output did not overwrite a's


def test_an_unreadable_image_is_skipped_and_reported_with_exit_2(tmp_path, capsys):
    good = [photo(tmp_path / "one.png", 0), photo(tmp_path / "three.png", 1)]
    broken = tmp_path / "two.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    out = tmp_path / "out"
    assert apply(good[0], broken, good[1], "--out", out) == 2
    err = capsys.readouterr().err
    assert f"skipped: {broken}: " in err
    assert err.strip().splitlines()[-1].startswith("error: images: 1 of 3 could not be colorized")
    assert {p.name for p in out.glob("*_color.png")} == {"one_color.png", "three_color.png"}


def test_each_bad_path_is_named_for_what_it_is(tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    args = [folder, fifo, loop, dangling, tmp_path / "missing.png"]
    assert apply(*args, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: images: ")
    for expected in [
        f"{folder} is a folder, expected an image file",
        f"{fifo} is not a regular file (a FIFO, socket or device)",
        f"{loop} is a symbolic link loop",
        f"{dangling} is a symbolic link to nothing",
        f"{tmp_path / 'missing.png'} does not exist",
    ]:
        assert expected in err, expected


def test_a_bad_out_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr(Colorizer, "load", classmethod(lambda cls, *a, **k: loaded.append(1)))
    image = photo(tmp_path / "x.png", 0)
    dangling = tmp_path / "out-link"
    dangling.symlink_to(tmp_path / "a-file" / "below")
    (tmp_path / "a-file").write_text("x")
    assert apply(image, "--out", dangling) == 2
    assert capsys.readouterr().err.startswith(f"error: out: cannot write into {dangling}")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert apply(image, "--out", locked) == 2
        assert capsys.readouterr().err.startswith(f"error: out: cannot write into {locked}")
    assert loaded == []
    assert not list(tmp_path.glob("**/.latentvar-probe.*"))


def test_a_good_run_still_writes_everything(tmp_path):
    image = photo(tmp_path / "x.png", 0)
    assert apply(image, "--out", tmp_path / "o") == 0
    names = {p.name for p in (tmp_path / "o").iterdir()}
    assert names == {"x_color.png", "x_segments.png", "x_overlay.png", "x_sample0.png"}
