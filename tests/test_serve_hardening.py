"""latentvar serve against hostile or unlucky clients (issue 23), on a real uvicorn server bound to a random
loopback port in this process: a many-part body or a base64 view never blocks /api/health, slow senders
get 408 and give their slot back, other origins and foreign Host headers cannot write, a token locks it,
bounded seeds, sessions stored only with their response, no reference cycle, the allocator tuned.

Every loop here is bounded (a count or a deadline); nothing leaves loopback."""

from __future__ import annotations

import base64
import gc
import io
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import weakref
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from latentvar.colorize import Colorizer  # noqa: E402
from latentvar.serve import ServeConfig, create_app, memory  # noqa: E402
from latentvar.serve.app import EXAMPLES  # noqa: E402
from latentvar.serve.guard import host_allowed  # noqa: E402
from latentvar.serve.session import OVERHEAD, Session, SessionStore  # noqa: E402

PHOTO = EXAMPLES / "gcompris-qt-data__explore_monuments_india_hawaMahal.jpg"
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer.load()


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def small() -> bytes:
    return png(np.asarray(Image.open(PHOTO).convert("RGB").resize((96, 64))))


@contextmanager
def served(colorizer, **config):
    """A real uvicorn server on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    app = create_app(colorizer, ServeConfig(**config))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):  # at most 10 s
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def get(url: str, timeout: float = 10.0, headers: dict | None = None) -> tuple[int, bytes, float]:
    """(status, body, seconds taken)."""
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, r.read(), time.perf_counter() - t0
    except urllib.error.HTTPError as err:
        return err.code, err.read(), time.perf_counter() - t0


def health_while(base: str, busy: threading.Thread, limit_s: float = 30.0) -> list[float]:
    """/api/health answered again and again while ``busy`` runs (at most ``limit_s``): the latencies."""
    latencies, t0 = [], time.perf_counter()
    while busy.is_alive() and time.perf_counter() - t0 < limit_s:
        status, _, took = get(base + "/api/health", timeout=10)
        assert status == 200
        latencies.append(took)
        time.sleep(0.02)
    return latencies


def raw(base: str, request: bytes, read: bool = True, timeout: float = 30.0) -> bytes:
    """Send ``request`` as is over a fresh connection; the whole answer (until the server closes)."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while read:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


# -- 1. nothing a request does blocks the loop ------------------------------------------------------------


def test_a_many_part_body_never_blocks_health(colorizer):
    boundary = "b0undary"
    part = f"--{boundary}\r\nContent-Disposition: form-data; name=f\r\n\r\n\r\n".encode()
    body = part * 150_000 + f"--{boundary}--\r\n".encode()  # 8.9 MB of empty fields
    head = (
        f"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nConnection: close\r\n\r\n"
    ).encode()
    with served(colorizer) as (base, _):
        answer = {}
        sender = threading.Thread(target=lambda: answer.setdefault("r", raw(base, head + body)))
        sender.start()
        latencies = health_while(base, sender)
        sender.join(timeout=60)
    assert answer["r"].startswith(b"HTTP/1.1 400"), answer["r"][:200]
    assert b"at most 16 parts" in answer["r"]
    assert latencies and max(latencies) < 1.0, max(latencies)


def test_a_base64_session_of_a_large_photo_is_built_off_the_loop(colorizer):
    big = png(np.asarray(Image.open(PHOTO).convert("RGB").resize((1600, 1200))))
    with served(colorizer) as (base, _):
        r = urllib.request.Request(base + "/api/colorize?samples=0", data=big, method="POST")
        with urllib.request.urlopen(r, timeout=120) as resp:
            handle = json.load(resp)["handle"]
        out = {}
        url = f"{base}/api/images/{handle}?encode=base64"
        fetch = threading.Thread(target=lambda: out.setdefault("r", get(url, timeout=120)))
        fetch.start()
        latencies = health_while(base, fetch, limit_s=120)
        fetch.join(timeout=120)
    status, body, took = out["r"]
    assert status == 200 and json.loads(body)["images"]["overlay"].startswith("data:image/png;base64,")
    assert len(latencies) >= 3, took  # health was asked while the views were being built
    assert max(latencies) < 1.0, max(latencies)


# -- 3. deadlines: slow senders get 408 and lose their slot -----------------------------------------------


def test_a_slow_sender_gets_408_and_idle_uploads_cannot_hold_the_queue(colorizer, small):
    head = (
        b"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000000\r\n\r\nab"
    )
    with served(colorizer, idle_timeout=0.5, body_timeout=1.5, max_reading=4) as (base, app):
        t0 = time.perf_counter()
        answer = raw(base, head)
        assert answer.startswith(b"HTTP/1.1 408") and b'"field":"body"' in answer
        assert time.perf_counter() - t0 < 5
        # four idle uploads hold every reading slot for at most the idle deadline; the model queue stays free
        idle = [socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) for _ in range(4)]
        for s in idle:
            s.sendall(head)
        time.sleep(0.2)
        r = urllib.request.Request(base + "/api/colorize?samples=0", data=small, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(r, timeout=30)
        assert refused.value.code == 503 and app.state.pending == 0
        time.sleep(1.0)  # past the idle deadline: their slots are given back
        with urllib.request.urlopen(r, timeout=60) as ok:
            assert ok.status == 200
        for s in idle:
            s.close()
        assert app.state.reading == 0


def test_a_client_that_disconnects_mid_upload_is_logged_as_such(colorizer, caplog):
    head = b"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
    with caplog.at_level(logging.WARNING, logger="latentvar.serve"), served(colorizer) as (base, app):
        raw(base, head + b"x" * 5000, read=False)
        for _ in range(100):  # at most 5 s for the server to notice
            if any("disconnected" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
        assert app.state.reading == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "latentvar.serve"]
    assert any("client disconnected before its request body was complete" in m for m in messages)
    assert not any("internal error" in m for m in messages)


# -- 4. only the page's own origin can write ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client(colorizer):
    with TestClient(create_app(colorizer), base_url=LOCAL) as c:
        yield c


def test_other_origins_and_foreign_hosts_cannot_write(client, small):
    post = {"content": small, "headers": {"content-type": "image/png"}}
    r = client.post(
        "/api/colorize", **post | {"headers": {"origin": "http://evil.example", "content-type": "text/plain"}}
    )
    assert r.status_code == 403 and r.json()["field"] == "origin"
    assert client.post("/api/colorize", content=small, headers={"origin": "null"}).status_code == 403
    r = client.post("/api/colorize", content=small, headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    assert client.get("/api/health", headers={"host": "attacker.example"}).status_code == 400
    assert client.get("/", headers={"host": "attacker.example:8000"}).json()["field"] == "host"
    assert len(client.app.state.store) == 0  # nothing refused reached the store
    ok = client.post(
        "/api/colorize", content=small, headers={"origin": LOCAL, "sec-fetch-site": "same-origin"}
    )
    assert ok.status_code == 200
    assert client.post("/api/colorize", **post).status_code == 200  # a script: neither header
    for host in ("localhost:8000", "127.0.0.1", "[::1]:80", "app.localhost", "192.168.1.5:8000"):
        assert client.get("/api/health", headers={"host": host}).status_code == 200, host
    handle = ok.json()["handle"]
    r = client.delete(f"/api/images/{handle}", headers={"origin": "http://localhost.evil.example"})
    assert r.status_code == 403 and client.get(f"/api/images/{handle}").status_code == 200


def test_host_allow_list():
    assert host_allowed("localhost:80", []) and host_allowed("[::1]:8000", [])
    assert host_allowed("photo.lan:8000", ["photo.lan"]) and not host_allowed("photo.lan", [])
    assert not host_allowed("127.0.0.1.evil.example", []) and not host_allowed("localhost.evil.example", [])


def test_every_response_carries_the_security_headers(client):
    for url in ("/", "/api/health", "/static/app.js", "/api/images/nope"):
        h = client.get(url).headers
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY", url
        assert "script-src 'self'" in h["content-security-policy"], url
        assert "frame-ancestors 'none'" in h["content-security-policy"]


def test_a_token_locks_every_request_but_the_static_files(colorizer):
    token = "s3cret-token-0123456789"
    with TestClient(create_app(colorizer, ServeConfig(token=token)), base_url=LOCAL) as c:
        assert c.get("/api/health").status_code == 401 and c.get("/").status_code == 401
        assert c.get("/api/health?token=wrong").json()["field"] == "token"
        assert c.get("/static/app.js").status_code == 200
        auth = {"authorization": f"Bearer {token}"}
        assert c.get("/api/health", headers=auth).status_code == 200
        r = c.get(f"/?token={token}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=strict" in r.headers["set-cookie"]
        assert c.get("/api/health").status_code == 200  # the cookie now
        assert c.get("/").status_code == 200


# -- 6. the smaller items ------------------------------------------------------------------------------------


def test_seeds_are_bounded_integers(client, small):
    for seed in (2**63, -1, 10**30):
        r = client.post(f"/api/colorize?seed={seed}", content=small)
        assert r.status_code == 422 and r.json()["field"] == "seed", seed
    handle = client.post(f"/api/colorize?seed={2**63 - 1}&samples=2", content=small).json()["handle"]
    assert client.get(f"/api/images/{handle}/sample-1.png").status_code == 200
    for seed in (2**64, -1):
        r = client.post(f"/api/images/{handle}/sample", json={"seed": seed})
        assert r.status_code == 422 and r.json()["field"] == "seed"


def test_a_session_is_stored_only_with_its_response(colorizer, small, monkeypatch):
    app = create_app(colorizer)
    monkeypatch.setattr(colorizer, "sample", lambda *a, **k: 1 / 0)
    with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as c:
        assert c.post("/api/colorize?encode=base64", content=small).status_code == 500
        assert len(app.state.store) == 0
        assert c.post("/api/colorize", content=small).status_code == 200 and len(app.state.store) == 1


def test_encode_is_checked_by_every_route(client, small):
    handle = client.post("/api/colorize?samples=0", content=small).json()["handle"]
    for method, url, body in [
        ("POST", "/api/colorize?encode=xml", None),
        ("GET", f"/api/images/{handle}?encode=xml", None),
        ("POST", f"/api/images/{handle}/recolour?encode=xml", {"segment": 0, "ab": [10, 10]}),
        ("POST", f"/api/images/{handle}/sample?encode=xml", {}),
        ("POST", f"/api/images/{handle}/reset?encode=xml", None),
    ]:
        r = client.request(
            method, url, json=body, content=small if body is None and method == "POST" else None
        )
        assert r.status_code == 422 and r.json()["error"].startswith("encode: expected 'url' or 'base64'"), (
            url
        )
    r = client.post(f"/api/images/{handle}/reset?encode=base64")
    assert base64.b64decode(r.json()["image"].split(",", 1)[1])[:4] == b"\x89PNG"


def test_bad_json_bodies_are_422_and_big_ones_413(client, small):
    handle = client.post("/api/colorize?samples=0", content=small).json()["handle"]
    url = f"/api/images/{handle}/recolour"
    headers = {"content-type": "application/json"}
    for body in (b"[" * 20_000 + b"]" * 20_000, b'{"segment": "\xff\xfe"}', b"{"):
        r = client.post(url, content=body, headers=headers)
        assert r.status_code == 422 and r.json()["field"] == "body", (body[:20], r.text)
    r = client.post(url, content=b" " * 70_000 + b"{}", headers=headers)
    assert r.status_code == 413 and r.json()["field"] == "body"


def test_a_forgotten_session_is_freed_without_the_cyclic_gc(colorizer, small):
    from latentvar.serve.views import build_session

    store = SessionStore(max_bytes=10**9)
    session = build_session(colorizer, small, "x", 2, 0, 10**6, 8)
    session.image("sample-1")  # its make has run: the closure that used to hold the session
    ref = weakref.ref(session)
    handle = store.add(session)
    del session
    gc.disable()
    try:
        store.remove(handle)
        assert ref() is None
    finally:
        gc.enable()


def test_a_session_counts_its_fixed_overhead():
    one = np.zeros((1, 1, 3), np.uint8)
    assert Session("x", one, one, one[..., 0], []).nbytes == OVERHEAD + 10
    store = SessionStore(max_bytes=3 * OVERHEAD)
    handles = [store.add(Session("x", one, one, one[..., 0], [])) for _ in range(5)]
    assert len(store) == 2 and store.bytes_used() <= 3 * OVERHEAD
    assert all(h in store._sessions for h in handles[-2:])


def test_the_fixed_overhead_covers_a_session_of_the_shipped_model():
    """OVERHEAD is what a session holds beside its arrays -- mostly the shipped model's palettes (K segments
    x 8 colours): measured by tracemalloc for a 1 x 1 photo, it must not exceed the constant."""
    import tracemalloc

    from latentvar.colorize import Colorizer

    colorizer, one = Colorizer.load(), np.zeros((1, 1, 3), np.uint8)
    palettes = json.dumps(colorizer.palettes(one, 8))  # the model's work (and its caches) not traced
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        session = Session("x", one, one.copy(), one[..., 0].copy(), json.loads(palettes))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(session.palettes) == colorizer.meta["config"]["segments"]
    assert 0.5 * OVERHEAD < held <= OVERHEAD, held


def test_the_allocator_is_tuned_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert memory.tune_allocator() is True
    memory.trim()
    rss, peak = memory.rss_bytes()
    assert 0 < rss <= peak


def test_cli_warns_beyond_loopback_and_checks_its_new_flags(monkeypatch, capsys):
    from latentvar.cli import app as cli
    from latentvar.cli import serve as serve_cli
    from latentvar.cli._errors import run

    assert serve_cli._loopback("127.0.0.1") and serve_cli._loopback("localhost")
    assert not serve_cli._loopback("0.0.0.0")
    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: started.append(self.config.app))
    monkeypatch.setattr(serve_cli, "_loopback", lambda host: False)  # as if bound beyond loopback
    token = "t0ken-of-sixteen-chars"
    args = ["serve", "--port", "0", "--run", "twemoji", "--token", token, "--allowed-host", "photo.lan"]
    assert run(cli, args) == 0 and len(started) == 1
    out, err = capsys.readouterr()
    assert err.startswith("warning: --host 127.0.0.1 is not loopback")
    assert re.search(rf"http://127\.0\.0\.1:\d+/\?token={token}", out)
    assert run(cli, ["serve", "--token", "short"]) == 2
    assert capsys.readouterr().err.startswith("error: token: expected at least 16")
    assert run(cli, ["serve", "--allowed-host", "a/b"]) == 2
    assert capsys.readouterr().err.startswith("error: allowed-host: expected a host name")


def test_the_multipart_splitter_finds_the_file_and_stops_at_16_parts():
    from latentvar.serve.uploads import ApiError, _multipart_file

    body = (
        b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nval\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
        b"Content-Type: image/png\r\n\r\nDATA\r\n--X\r\n\r\n--XX--\r\n"
    )  # "--X" inside the file is not the delimiter
    assert _multipart_file(body, "multipart/form-data; boundary=XX") == (b"DATA\r\n--X\r\n", "p.png")
    rfc2231 = b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''%C3%A9.png\r\n\r\nD\r\n--XX--"
    assert _multipart_file(rfc2231, 'multipart/form-data; boundary="XX"') == (b"D", "é.png")
    field = b'--XX\r\nContent-Disposition: form-data; name="f"\r\n\r\n\r\n'
    for parts, message in [(16, "expected a file"), (17, "at most 16 parts")]:
        with pytest.raises(ApiError, match=message):
            _multipart_file(field * parts + b"--XX--\r\n", "multipart/form-data; boundary=XX")
    with pytest.raises(ApiError, match="with a boundary"):
        _multipart_file(field, "multipart/form-data")
