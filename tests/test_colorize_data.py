"""The embedded Twemoji set: shape, split sizes, determinism, and agreement with its index."""

import hashlib

import numpy as np
import pytest

from latentvar.data.twemoji import load_twemoji, twemoji_names


def test_splits_partition_the_set():
    sizes = {s: len(twemoji_names(s)) for s in ("train", "val", "test", "all")}
    assert sizes["all"] == 3786
    assert sizes["train"] + sizes["val"] + sizes["test"] == 3786
    assert 0.75 < sizes["train"] / 3786 < 0.85 and 0.07 < sizes["test"] / 3786 < 0.13
    assert not set(twemoji_names("train")) & set(twemoji_names("test"))
    assert twemoji_names("all") == sorted(twemoji_names("all"))


def test_split_is_sha1_of_name():
    for name in twemoji_names("test")[:20]:
        assert int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10 == 9


def test_images_are_rgba_uint8_and_not_blank():
    x = load_twemoji("test")
    assert x.dtype == np.uint8 and x.shape == (len(twemoji_names("test")), 32, 32, 4)
    assert (x[..., 3] > 0).mean() > 0.3  # emoji cover a good part of their square
    assert x[..., :3][x[..., 3] > 128].std() > 30  # and are coloured
    np.testing.assert_array_equal(x, load_twemoji("test"))


def test_grinning_face_is_yellow():
    names = twemoji_names("all")
    img = load_twemoji("all")[names.index("1f600.png")]
    centre = img[8:24, 8:24]
    opaque = centre[centre[..., 3] == 255][:, :3].astype(float)
    r, g, b = np.median(opaque, axis=0)
    assert r > 200 and g > 150 and b < 100


def test_resize_and_bad_input():
    assert load_twemoji("val", size=16).shape[1:] == (16, 16, 4)
    with pytest.raises(ValueError, match=r"^split: "):
        load_twemoji("training")
    with pytest.raises(ValueError, match=r"^size: "):
        load_twemoji("train", size=0)
