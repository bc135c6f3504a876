"""latentvar serve's JSON API, in process (FastAPI's test client): every endpoint, every bad input, the
recolour rule against `Colorizer.recolour`, expiry, the memory bound, 16 concurrent requests."""

from __future__ import annotations

import io
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from latentvar.colorize import Colorizer  # noqa: E402
from latentvar.serve import ServeConfig, create_app  # noqa: E402
from latentvar.serve.app import EXAMPLES, STATIC
from latentvar.serve.session import OVERHEAD, Session, SessionStore  # noqa: E402
from latentvar.serve.uploads import safe_stem  # noqa: E402

PHOTO = EXAMPLES / "gcompris-qt-data__explore_monuments_india_hawaMahal.jpg"
K = Colorizer.load().meta["config"]["segments"]  # the shipped photo model's segments
LOCAL = "http://127.0.0.1"  # the Host the server accepts (a test client's default, "testserver", it refuses)


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer.load()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    im = Image.open(PHOTO).convert("RGB")
    return np.asarray(im.resize((160, 120)))


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")  # lossless, so the server decodes exactly these pixels
    return buf.getvalue()


@pytest.fixture()
def client(colorizer):
    with TestClient(create_app(colorizer), base_url=LOCAL) as c:
        yield c


def png(client, url: str) -> np.ndarray:
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)))


def colorize(client, rgb, **params):
    r = client.post("/api/colorize", content=jpeg(rgb), headers={"content-type": "image/png"}, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_colorize_returns_what_the_colorizer_computes(client, colorizer, photo):
    j = colorize(client, photo)
    assert (j["width"], j["height"]) == (160, 120) and len(j["images"]["samples"]) == 3
    assert np.array_equal(png(client, j["images"]["colorized"]), colorizer.colorize(photo))
    assert np.array_equal(png(client, j["images"]["current"]), colorizer.colorize(photo))
    ids = png(client, j["images"]["segments"]).astype(int)
    assert np.array_equal(ids // j["segment_levels"], colorizer.segment(photo))
    assert ids.max() <= 255 and np.all(ids % j["segment_levels"] == 0)
    assert png(client, j["images"]["overlay"]).shape == (120, 160, 3)
    grey = png(client, j["images"]["grey"])
    assert np.array_equal(grey[..., 0], grey[..., 2])  # a = b = 0
    for url in j["images"]["samples"]:
        assert png(client, url).shape == (120, 160, 3)
    assert [s["segment"] for s in j["segments"]] == list(range(K))
    assert j["segments"] == colorizer.palettes(photo, 8)
    assert abs(sum(s["area"] for s in j["segments"]) - 1.0) < 1e-5


def test_multipart_upload_and_the_file_name_never_becomes_a_path(client, photo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name, stem in [("../../etc/passwd.png", "passwd"), ("..\\..\\x y.png", "x_y"), ("\x00é\n.png", None)]:
        r = client.post("/api/colorize", files={"image": (name, jpeg(photo), "image/png")})
        assert r.status_code == 200, r.text
        j = r.json()
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", j["name"]) and j["name"] == (stem or j["name"])
        d = client.get(j["images"]["current"].split("?")[0], params={"download": "true"})
        assert d.headers["content-disposition"] == f'attachment; filename="{j["name"]}_current.png"'
    assert list(tmp_path.iterdir()) == []  # nothing written, in the temp folder or anywhere here
    assert safe_stem("a/b/../c.d.jpg") == "c_d" and safe_stem("") == "photo"


def test_recolour_changes_that_segment_only_and_is_colorizer_recolour(client, colorizer, photo):
    j = colorize(client, photo)
    seg = png(client, j["images"]["segments"]) // j["segment_levels"]
    k = int(np.bincount(seg.ravel()).argmax())
    before = png(client, j["images"]["current"])
    r = client.post(f"/api/images/{j['handle']}/recolour", json={"segment": k, "ab": [60.0, 40.0]})
    assert r.status_code == 200, r.text
    after = png(client, r.json()["image"])
    inside = seg == k
    assert np.array_equal(after[~inside], before[~inside])
    changed = (after[inside] != before[inside]).any(-1)
    assert changed.mean() > 0.9 and r.json()["changed_pixels"] == changed.sum()
    expected = colorizer.recolour(photo, k, (60.0, 40.0), base=before, segments=seg.astype(np.uint8))
    assert np.array_equal(after, expected)
    # a second segment by rgb: the first one's colours stay
    other = int(np.bincount(seg.ravel(), minlength=K)[[i for i in range(K) if i != k]].argmax())
    other = [i for i in range(K) if i != k][other]
    r2 = client.post(f"/api/images/{j['handle']}/recolour", json={"segment": other, "rgb": "#2040ff"})
    assert r2.status_code == 200 and r2.json()["recoloured"] == sorted([k, other])
    assert np.array_equal(png(client, r2.json()["image"])[inside], after[inside])


def _split_segment(seg: np.ndarray):
    """(k, a pixel (x, y) of one of k's connected regions, that region) for a segment of several parts."""
    from scipy import ndimage

    for k in np.argsort(-np.bincount(seg.ravel())):
        labels, n = ndimage.label(seg == k, structure=np.ones((3, 3), bool))
        if n > 1:
            y, x = np.argwhere(labels == 1)[0]
            return int(k), [int(x), int(y)], labels == 1
    raise AssertionError("every segment is one region")


def test_recolour_at_a_pixel_changes_only_that_region_and_survives_a_resample(client, colorizer, photo):
    """``at`` = [x, y]: only the connected region (8-neighbours) of the segment there changes -- as
    `Colorizer.recolour(where=region_at(...))` --, a resample keeps it, a whole-segment recolour replaces it,
    reset drops it."""
    from latentvar.colorize.colorizer import region_at

    j = colorize(client, photo, samples=1)
    h = j["handle"]
    seg = png(client, j["images"]["segments"]) // j["segment_levels"]
    k, at, region = _split_segment(seg)
    assert np.array_equal(region_at(seg, *at), region)
    before = png(client, j["images"]["current"])
    r = client.post(f"/api/images/{h}/recolour", json={"segment": k, "ab": [60.0, 40.0], "at": at})
    assert r.status_code == 200, r.text
    after = png(client, r.json()["image"])
    assert r.json()["recoloured"] == [k]
    assert np.array_equal(after[~region], before[~region])  # the segment's other parts too
    assert (after[region] != before[region]).any(-1).mean() > 0.5
    expected = colorizer.recolour(
        photo, k, (60.0, 40.0), base=before, segments=seg.astype(np.uint8), where=region
    )
    assert np.array_equal(after, expected)
    sampled = png(client, client.post(f"/api/images/{h}/sample", json={"seed": 3}).json()["image"])
    assert np.array_equal(sampled[region], after[region])
    assert not np.array_equal(sampled[(seg == k) & ~region], after[(seg == k) & ~region])
    whole = client.post(f"/api/images/{h}/recolour", json={"segment": k, "ab": [0.0, -40.0]}).json()
    sampled = png(client, client.post(f"/api/images/{h}/sample", json={"seed": 4}).json()["image"])
    assert np.array_equal(
        sampled[seg == k], png(client, whole["image"])[seg == k]
    )  # the region's colour gone
    assert client.post(f"/api/images/{h}/reset").json()["recoloured"] == []


@pytest.mark.parametrize("at", [[-1, 0], [0, 10**6], [159, 120], "other segment"])
def test_recolour_at_a_pixel_outside_the_photo_or_the_segment_is_refused(client, photo, at):
    j = colorize(client, photo)
    seg = png(client, j["images"]["segments"]) // j["segment_levels"]
    k = int(seg[0, 0])
    if at == "other segment":
        y, x = np.argwhere(seg != k)[0]
        at = [int(x), int(y)]
    r = client.post(f"/api/images/{j['handle']}/recolour", json={"segment": k, "ab": [0, 0], "at": at})
    assert r.status_code == 422 and r.json()["field"] == "at", r.text
    assert r.json()["error"].startswith("at: ")


def test_resample_keeps_the_recolouring_and_reset_drops_it(client, photo):
    j = colorize(client, photo, samples=1)
    h = j["handle"]
    seg = png(client, j["images"]["segments"]) // j["segment_levels"]
    k = int(np.bincount(seg.ravel()).argmax())
    recoloured = png(
        client, client.post(f"/api/images/{h}/recolour", json={"segment": k, "ab": [0, 60]}).json()["image"]
    )
    r = client.post(f"/api/images/{h}/sample", json={"seed": 5})
    assert r.status_code == 200 and r.json()["seed"] == 5 and r.json()["version"] == 2
    sampled = png(client, r.json()["image"])
    assert np.array_equal(sampled[seg == k], recoloured[seg == k])
    assert not np.array_equal(sampled[seg != k], recoloured[seg != k])
    again = png(client, client.post(f"/api/images/{h}/sample", json={"seed": 5}).json()["image"])
    assert np.array_equal(again, sampled)  # a seed is a draw
    assert client.post(f"/api/images/{h}/sample").status_code == 200  # no body: a random seed
    reset = client.post(f"/api/images/{h}/reset").json()
    assert reset["recoloured"] == []
    assert np.array_equal(png(client, reset["image"]), png(client, j["images"]["colorized"]))
    assert client.get(f"/api/images/{h}").json()["version"] == reset["version"]
    assert client.delete(f"/api/images/{h}").json() == {"deleted": h}
    assert client.get(f"/api/images/{h}").status_code == 404


def test_base64_images(client, photo):
    j = colorize(client, photo, samples=0, encode="base64")
    assert j["images"]["samples"] == [] and j["images"]["colorized"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    "method, url, kwargs, status, message",
    [
        (
            "post",
            "/api/colorize",
            {"content": b"not an image", "headers": {"content-type": "text/plain"}},
            415,
            r"^image: expected an image file \(JPEG, PNG",
        ),
        (
            "post",
            "/api/colorize",
            {"content": b"\xff\xd8\xff\xe0" + b"\0" * 64},
            415,
            r"^image: expected an image",
        ),
        (
            "post",
            "/api/colorize",
            {"content": b""},
            400,
            r"^image: expected an image file in the request body",
        ),
        ("post", "/api/colorize?samples=9", {"content": b"x"}, 422, r"^samples: expected 0\.\.8, got 9"),
        ("post", "/api/colorize?samples=two", {"content": b"x"}, 422, r"^samples: "),
        ("post", "/api/colorize?encode=jpeg", {"content": b"x"}, 422, r"^encode: expected 'url' or 'base64'"),
        (
            "post",
            "/api/images/nope/recolour",
            {"json": {"segment": 0, "ab": [0, 0]}},
            404,
            r"^handle: unknown or expired image handle 'nope'",
        ),
        ("get", "/api/images/nope", {}, 404, r"^handle: unknown or expired"),
        ("get", "/api/images/nope/current.png", {}, 404, r"^handle: unknown or expired"),
        ("post", "/api/images/nope/sample", {}, 404, r"^handle: unknown or expired"),
        ("post", "/api/images/nope/reset", {}, 404, r"^handle: unknown or expired"),
        ("delete", "/api/images/nope", {}, 404, r"^handle: unknown or expired"),
        (
            "get",
            "/api/examples/..%2F..%2Fetc%2Fpasswd",
            {},
            404,
            r"^example: expected an id from /api/examples",
        ),
    ],
)
def test_bad_requests_name_the_field(client, method, url, kwargs, status, message):
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status, r.text
    assert re.match(message, r.json()["error"]), r.json()


@pytest.mark.parametrize(
    "body, field, message",
    [
        (
            {"segment": K, "ab": [0, 0]},
            "segment",
            rf"^segment: expected a segment id in 0\.\.{K - 1}, got {K}",
        ),
        (
            {"segment": -1, "ab": [0, 0]},
            "segment",
            rf"^segment: expected a segment id in 0\.\.{K - 1}, got -1",
        ),
        ({"segment": 0, "ab": [150, 0]}, "ab", r"^ab: \(150, 0\) is outside the sRGB gamut"),
        ({"segment": 0, "ab": [1]}, "ab", r"^ab: List should have at least 2 items"),
        ({"segment": 0}, "ab", r"^ab: give the colour as exactly one of 'ab'"),
        ({"segment": 0, "ab": [0, 0], "rgb": "#000000"}, "ab", r"^ab: give the colour as exactly one"),
        ({"segment": 0, "rgb": "red"}, "rgb", r"^rgb: String should match pattern"),
        ({"segment": "zero", "ab": [0, 0]}, "segment", r"^segment: Input should be a valid integer"),
        ({"segment": 0, "ab": [0, 0], "width": 0}, "width", r"^width: Input should be greater than 0"),
    ],
)
def test_bad_recolour_names_the_field(client, photo, body, field, message):
    h = colorize(client, photo, samples=0)["handle"]
    r = client.post(f"/api/images/{h}/recolour", json=body)
    assert r.status_code == 422 and r.json()["field"] == field
    assert re.match(message, r.json()["error"]), r.json()
    bad_json = client.post(
        f"/api/images/{h}/recolour", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422 and bad_json.json()["error"].startswith("body: ")


def test_bad_image_names(client, photo):
    j = colorize(client, photo, samples=2)
    h = j["handle"]
    r = client.get(f"/api/images/{h}/sample-2.png")
    assert r.status_code == 404 and r.json()["error"] == "image: this session has 2 samples, not 'sample-2'"
    r = client.get(f"/api/images/{h}/secret.png")
    assert r.status_code == 404 and r.json()["error"].startswith("image: expected one of photo, grey")


def test_over_20_mb_is_413(client):
    assert ServeConfig().max_upload_bytes == 20_000_000
    r = client.post("/api/colorize", content=b"\0" * (20_000_000 + 70_000))
    assert r.status_code == 413 and r.json()["error"] == "image: expected at most 20,000,000 bytes (20 MB)"
    body = b"\0" * 20_000_001  # within the multipart slack as a body, over the limit as a file
    r = client.post("/api/colorize", files={"image": ("big.png", body, "image/png")})
    assert r.status_code == 413 and r.json()["field"] == "image"


def test_over_40_mpx_is_413_before_decoding(client):
    buf = io.BytesIO()
    Image.new("L", (8000, 5001)).save(buf, "PNG")  # 40,008,000 pixels in a few kB
    r = client.post("/api/colorize", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 413
    assert r.json()["error"] == (
        "image: 8000×5001 = 40,008,000 pixels is over the limit of 40,000,000 pixels"
    )


def test_an_unexpected_failure_is_a_500_without_a_traceback(colorizer, photo, monkeypatch):
    app = create_app(colorizer)
    monkeypatch.setattr(colorizer, "palettes", lambda *a, **k: 1 / 0)
    with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as c:
        r = c.post("/api/colorize", content=jpeg(photo))
    assert r.status_code == 500 and r.json() == {"error": "internal error", "field": None}


def test_handles_expire_and_the_store_forgets_the_least_recently_used():
    now = [0.0]
    store = SessionStore(max_bytes=2500 + 2 * OVERHEAD, ttl=60, clock=lambda: now[0])

    def session():
        a = np.zeros((10, 10, 3), np.uint8)
        return Session(
            "x", a, a, np.zeros((10, 10), np.uint8), []
        )  # photo, colorized, segments, current: 1,000 B + OVERHEAD

    first, second = store.add(session()), store.add(session())
    now[0] = 30
    store.get(first)  # first is now the most recently used
    third = store.add(session())  # over 2,500 bytes: the least recently used (second) goes
    assert store.get(first) and store.get(third)
    with pytest.raises(KeyError):
        store.get(second)
    now[0] = 30 + 61
    assert len(store) == 0 and store.bytes_used() == 0
    with pytest.raises(MemoryError, match=r"^this image needs"):
        SessionStore(max_bytes=10).add(session())


def test_16_concurrent_colorize_requests_succeed_with_memory_bounded(colorizer, photo):
    one = Session("x", photo, photo, photo[..., 0], []).nbytes  # grey, overlay, samples: made when asked
    config = ServeConfig(store_bytes=5 * one + one // 2, workers=1)
    app = create_app(colorizer, config)
    with TestClient(app, base_url=LOCAL) as c, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: c.post("/api/colorize", content=jpeg(photo)), range(16)))
        assert [r.status_code for r in responses] == [200] * 16
        handles = [r.json()["handle"] for r in responses]
        assert len(set(handles)) == 16
        assert app.state.peak_in_flight == 1  # model calls never ran side by side
        assert app.state.store.bytes_used() <= config.store_bytes and len(app.state.store) == 5
        alive = [h for h in handles if c.get(f"/api/images/{h}").status_code == 200]
        assert len(alive) == 5


def test_examples_health_openapi_and_the_page(client):
    examples = client.get("/api/examples").json()
    assert len(examples) == 8 and all(e["licence"] for e in examples)
    r = client.get(examples[0]["url"])
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    assert client.get("/api/health").json()["model"]["segments"] == K
    paths = client.get("/openapi.json").json()["paths"]
    for path in [
        "/api/colorize",
        "/api/images/{handle}",
        "/api/images/{handle}/{image}.png",
        "/api/images/{handle}/recolour",
        "/api/images/{handle}/sample",
        "/api/images/{handle}/reset",
    ]:
        assert path in paths
    assert "multipart/form-data" in paths["/api/colorize"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_the_page_loads_nothing_from_outside_the_app():
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
        assert not re.search(r"url\([\"']?(https?:)?//", text), path
        assert not re.search(r"fetch\([\"'`](https?:)?//", text), path


def test_serve_needs_a_latent_model():
    with pytest.raises(
        ValueError, match=r"^run: serve needs a latent-segmentation model, this one is 'grey'"
    ):
        create_app(Colorizer.grey())


def test_cli_refuses_a_bad_port():
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "latentvar", "serve", "--port", "70000"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    assert r.returncode == 2 and r.stderr.startswith("error: port: expected 0..65535, got 70000")


def test_samples_are_drawn_when_asked_and_a_seed_fixes_them(client, photo):
    a, b, c = (colorize(client, photo, samples=2, seed=s) for s in (7, 7, 8))
    assert np.array_equal(png(client, a["images"]["samples"][1]), png(client, b["images"]["samples"][1]))
    assert not np.array_equal(png(client, a["images"]["samples"][1]), png(client, c["images"]["samples"][1]))
    assert not np.array_equal(png(client, a["images"]["samples"][0]), png(client, a["images"]["samples"][1]))


def test_uploads_waiting_at_once_are_bounded(colorizer, photo):
    app = create_app(colorizer, ServeConfig(max_pending=2))
    with TestClient(app, base_url=LOCAL) as c:
        app.state.pending = 2  # two uploads are waiting for the model
        r = c.post("/api/colorize", content=jpeg(photo))
        assert r.status_code == 503 and r.json()["error"] == "image: 2 photos are waiting already; try again"
        app.state.pending = 1
        assert c.post("/api/colorize", content=jpeg(photo)).status_code == 200
        assert app.state.pending == 1  # its own slot given back
