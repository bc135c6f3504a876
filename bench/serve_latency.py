"""latentvar serve's latency on a 1-megapixel photo, over real HTTP to a `latentvar serve` subprocess.

    PYTHONPATH=src python bench/serve_latency.py [--repeats 5] [--no-browser]

- colorize: POST /api/colorize (3 samples) then GET current.png -- what the page waits for before it shows
  the colorization; median and worst of ``repeats``;
- recolour: POST recolour then GET current.png, over the segments in use and their palettes, 2 × repeats;
- 16 concurrent colorize requests (16 client threads at once): median and worst latency, and the server's
  peak resident memory (VmHWM) before and after;
- ``--big``: one 7296×5472 (39.9 Mpx) photo, colorized, with its grey view, overlay and a sample, and the
  server's peak resident memory after it;
- in a real browser (Debian's chromium, Playwright), unless --no-browser: from choosing the file to the
  colorization drawn (the page's own ``firstColorizationMs``), and from a click on a palette swatch to the
  recoloured image drawn (the page's ``lastRecolourMs``, and Playwright's wall clock around click + wait,
  which adds its own polling).

The photo: the bundled Hawa Mahal example (320×240, a held-out test photo) upscaled to 1156×867 = 1.0 Mpx;
the content barely matters to the time, the pixel count does.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src/latentvar/data/photo_examples/gcompris-qt-data__explore_monuments_india_hawaMahal.jpg"


def photo_bytes() -> bytes:
    buf = io.BytesIO()
    Image.open(EXAMPLE).convert("RGB").resize((1156, 867), Image.Resampling.LANCZOS).save(
        buf, "JPEG", quality=92
    )
    return buf.getvalue()


def request(url: str, data: bytes | None = None, content_type: str = "image/jpeg") -> bytes:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if data else {})
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.read()


def colorize(base: str, body: bytes) -> tuple[float, dict]:
    start = time.perf_counter()
    j = json.loads(request(base + "/api/colorize?samples=3", body))
    request(base + j["images"]["current"])
    return time.perf_counter() - start, j


def vm_hwm(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 2**20  # GiB


def browser(base: str, path: Path, repeats: int) -> tuple[list[float], list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    shown, recoloured, in_page = [], [], []
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base)
        for i in range(repeats):
            page.evaluate("document.body.dataset.state = 'empty'")
            page.set_input_files("#file", [])
            page.set_input_files("#file", str(path))
            page.wait_for_selector("body[data-state=ready]", timeout=120_000)
            shown.append(page.evaluate("window.firstColorizationMs") / 1000)
            box = page.locator("#current").bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 3)
            page.wait_for_selector("#palette:not([hidden])")
            start = time.perf_counter()
            page.click(f"#swatches .swatch[data-index='{(i + 3) % 8}']")
            page.wait_for_selector("#current[data-version='1']", timeout=60_000)
            recoloured.append(time.perf_counter() - start)
            in_page.append(page.evaluate("window.lastRecolourMs") / 1000)
        b.close()
    return shown, recoloured, in_page


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--big", action="store_true", help="also one 39.9-Mpx photo (the 40 Mpx limit)")
    args = parser.parse_args()
    body = photo_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        [sys.executable, "-m", "latentvar", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    rows = []
    try:
        base = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline()).group(0)
        colorize(base, body)  # warm-up
        times, j = zip(*[colorize(base, body) for _ in range(args.repeats)], strict=True)
        rows.append(("colorize 1 Mpx + GET current.png", statistics.median(times), max(times)))
        session = j[-1]
        used = [s for s in session["segments"] if s["area"] > 0]
        rec = []
        for i in range(2 * args.repeats):
            s = used[i % len(used)]
            colour = s["colours"][(i // len(used)) % len(s["colours"])]
            start = time.perf_counter()
            r = json.loads(
                request(
                    f"{base}/api/images/{session['handle']}/recolour",
                    json.dumps({"segment": s["segment"], "ab": colour["ab"]}).encode(),
                    "application/json",
                )
            )
            request(base + r["image"])
            rec.append(time.perf_counter() - start)
        rows.append(("recolour + GET current.png", statistics.median(rec), max(rec)))
        before = vm_hwm(server.pid)
        with ThreadPoolExecutor(16) as pool:
            concurrent = [t for t, _ in pool.map(lambda _: colorize(base, body), range(16))]
        rows.append(("16 concurrent colorize, each", statistics.median(concurrent), max(concurrent)))
        after = vm_hwm(server.pid)
        if args.big:
            buf = io.BytesIO()
            Image.open(io.BytesIO(body)).resize((7296, 5472), Image.Resampling.BILINEAR).save(buf, "JPEG")
            seconds, big = colorize(base, buf.getvalue())
            rows.append(("colorize 39.9 Mpx + GET current.png", seconds, seconds))
            for name in ("grey", "overlay"):  # the views the page loads next, made on request
                request(base + big["images"][name])
            request(base + big["images"]["samples"][0])
            big_hwm = vm_hwm(server.pid)
        if not args.no_browser:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "photo-1mpx.jpg"
                path.write_bytes(body)
                shown, recoloured, in_page = browser(base, path, args.repeats)
            rows.append(("browser: file chosen -> colorization drawn", statistics.median(shown), max(shown)))
            rows.append(
                (
                    "browser: swatch click handler -> recolour drawn (the page's clock)",
                    statistics.median(in_page),
                    max(in_page),
                )
            )
            rows.append(
                (
                    "browser: swatch clicked -> recolour drawn (Playwright's clock)",
                    statistics.median(recoloured),
                    max(recoloured),
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"\n1156×867 photo ({len(body):,} bytes JPEG), load {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs\n"
    )
    print("| | median | worst |\n|---|---:|---:|")
    for name, med, worst in rows:
        print(f"| {name} | {med * 1000:.0f} ms | {worst * 1000:.0f} ms |")
    print(f"\nserver peak RSS: {before:.2f} GiB before the 16 concurrent requests, {after:.2f} GiB after")
    if args.big:
        print(f"after the 39.9-Mpx photo (colorized, grey, overlay, one sample): {big_hwm:.2f} GiB")


if __name__ == "__main__":
    main()
