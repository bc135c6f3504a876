"""latentvar serve end to end in a real headless browser (Debian's chromium, driven by Playwright): start the
server on a free loopback port, upload a photo, wait for the colorization, click a segment, pick a colour,
and check that pixels inside that segment changed and pixels outside did not. Screenshots go to
runs/serve-e2e/. In CI (CI=true) a missing browser is a failure, not a skip: .ci/run installs chromium."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "src/latentvar/data/photo_examples/gcompris-qt-data__explore_monuments_india_hawaMahal.jpg"
SHOTS = ROOT / "runs" / "serve-e2e"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    message = "no chromium found (apt-get install chromium; .ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentvar", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"serve printed {line!r}"
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def fetch_png(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


@pytest.mark.slow
def test_upload_click_a_segment_recolour_it_in_a_browser(server):
    executable = chromium()
    try:
        import playwright.sync_api as playwright
    except ImportError:  # a dev dependency: missing only where the dev extras are not installed
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # a Content-Security-Policy violation (an inline script or style, a foreign URL) is a console error
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = page.goto(server)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        page.wait_for_selector("#examples button")  # the bundled photos are listed
        page.set_input_files("#file", str(PHOTO))
        page.wait_for_selector("body[data-state=ready]", timeout=60_000)
        session = page.evaluate("session")
        page.screenshot(path=str(SHOTS / "1-colorized.png"), full_page=True)

        base = server.rstrip("/")
        ids = fetch_png(base + session["images"]["segments"])[..., 0].astype(int) // session["segment_levels"]
        before = fetch_png(base + session["images"]["current"])
        assert before.shape[:2] == ids.shape == (session["height"], session["width"])
        # the largest segment, clicked at a pixel deep inside it (its 3x3 neighbourhood all in it)
        k = int(np.bincount(ids.ravel()).argmax())
        inside = ids == k
        core = (
            inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
        )
        ys, xs = np.nonzero(core)
        y, x = int(ys[len(ys) // 2]) + 1, int(xs[len(xs) // 2]) + 1
        box = page.locator("#current").bounding_box()
        page.mouse.move(
            box["x"] + (x + 0.5) * box["width"] / ids.shape[1],
            box["y"] + (y + 0.5) * box["height"] / ids.shape[0],
        )
        assert page.inner_text("#hover").startswith(f"segment {k} ")  # hovering names the segment
        page.screenshot(path=str(SHOTS / "2-hover.png"), full_page=True)
        page.mouse.down()
        page.mouse.up()
        page.wait_for_selector("#palette:not([hidden])")
        assert page.inner_text("#seg-id") == str(k)

        # the palette colour farthest from the segment's present colour, so the change is visible
        import torch

        from latentvar.colorize.lab import rgb_to_lab

        now = rgb_to_lab(torch.from_numpy(before[inside]).float() / 255)[:, 1:].mean(0)
        colours = session["segments"][k]["colours"]
        far = int(np.argmax([float(((torch.tensor(c["ab"]) - now) ** 2).sum()) for c in colours]))
        page.click(f"#swatches .swatch[data-index='{far}']")
        page.wait_for_selector("#current[data-version='1']", timeout=30_000)
        page.screenshot(path=str(SHOTS / "3-recoloured.png"), full_page=True)
        shown = page.evaluate(
            """() => { const img = document.getElementById('current');
                       const c = document.createElement('canvas');
                       c.width = img.naturalWidth; c.height = img.naturalHeight;
                       const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
                       return Array.from(ctx.getImageData(0, 0, c.width, c.height).data); }"""
        )
        browser.close()
    after = np.array(shown, np.uint8).reshape(ids.shape[0], ids.shape[1], 4)[..., :3]
    assert np.array_equal(after, fetch_png(base + session["images"]["current"].split("?")[0]))
    assert np.array_equal(after[~inside], before[~inside])  # outside the segment: untouched
    changed = (after[inside] != before[inside]).any(-1).mean()
    assert changed > 0.5, f"only {changed:.0%} of segment {k}'s pixels changed"
    assert errors == []
