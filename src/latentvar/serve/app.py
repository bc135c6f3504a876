"""The web app: a FastAPI application around one loaded `Colorizer` (docs/serve.md says why FastAPI).

Routes (the OpenAPI schema at /openapi.json is the reference; FastAPI's /docs and /redoc pages are off,
since they load Swagger UI and ReDoc from a CDN):

    GET  /                                   the page (static/index.html; its script and style under /static)
    POST /api/colorize                       an image in (raw body, or multipart field "image") -> a session
    GET  /api/images/{handle}                the session again (segments, palettes, image URLs)
    GET  /api/images/{handle}/{image}.png    grey | photo | colorized | overlay | segments | current | sample-i
    POST /api/images/{handle}/recolour       {"segment": k, "ab": [a, b]} or {"segment": k, "rgb": "#rrggbb"}
    POST /api/images/{handle}/sample         {"seed": s}: a fresh coherent sample under the recolourings
    POST /api/images/{handle}/reset          back to the colorization, recolourings dropped
    DELETE /api/images/{handle}
    GET  /api/examples, /api/examples/{id}   the bundled photos
    GET  /api/health                         the model being served

Every model call runs in a worker thread (`anyio.to_thread`) behind a capacity limiter of ``workers``
(default 1: the model uses both cores already), never on the event loop; PNG encoding runs in threads too.
Errors are JSON ``{"error": "<field>: <what was expected>", "field": "<field>"}`` with a 4xx status; an
unexpected failure is a 500 saying only "internal error" (the traceback goes to the server's log).
Nothing is written to disk: uploads, images and sessions live in memory (`session.SessionStore`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from latentvar import report
from latentvar.colorize import Colorizer
from latentvar.colorize.lab import rgb_to_lab
from latentvar.colorize.visual import grey_image, overlay
from latentvar.serve.schema import (
    ColorizeResponse,
    Example,
    ImageUpdate,
    RecolourRequest,
    SampleRequest,
)
from latentvar.serve.session import Session, SessionStore, UnknownHandle
from latentvar.serve.uploads import ApiError, decode_upload, read_upload, safe_stem

log = logging.getLogger("latentvar.serve")
STATIC = Path(__file__).resolve().parent / "static"
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "photo_examples"
IMAGE_NAME = re.compile(r"^(photo|grey|colorized|overlay|segments|current|sample-[0-9]{1,2})$")


@dataclass
class ServeConfig:
    max_upload_bytes: int = 20 * 1000 * 1000  # 20 MB
    max_pixels: int = 40 * 1000 * 1000  # 40 Mpx
    max_samples: int = 8
    palette_size: int = 8
    store_bytes: int = 1 << 30  # the sessions' arrays, in all
    ttl: float = 1800.0  # seconds a session lives after its last use
    workers: int = 1  # model calls at once
    max_pending: int = 32  # colorize requests admitted at once (each holds its upload); more get 503


def png_bytes(image: np.ndarray, level: int = 1) -> bytes:
    """PNG at zlib ``level``: 0 (stored, 1 Mpx in ~27 ms, 3 MB) for what the page shows over loopback,
    1 (~55 ms, 1.3 MB) for base64 in JSON, 6 (the default elsewhere) for a download."""
    return report.png_bytes(image, compress_level=level)


def segment_levels(k: int) -> int:
    """The grey step between segment ids in segments.png: ids are drawn as id × step, so a browser's
    colour handling cannot move one id onto another."""
    return max(1, 255 // max(k - 1, 1))


def create_app(colorizer: Colorizer, config: ServeConfig | None = None) -> FastAPI:
    """The app serving ``colorizer`` (a latent-segmentation model). ``app.state.store`` holds the sessions."""
    config = config or ServeConfig()
    if colorizer.kind != "latent":
        raise ValueError(f"run: serve needs a latent-segmentation model, this one is {colorizer.kind!r}")
    k = int(colorizer.model.config["segments"])
    app = FastAPI(
        title="latentvar serve",
        summary="Colorize a photo and recolour it one latent segment at a time.",
        version="1",
        docs_url=None,  # Swagger UI / ReDoc come from a CDN: nothing here loads from outside the app
        redoc_url=None,
    )
    store = SessionStore(config.store_bytes, config.ttl)
    limiter = anyio.CapacityLimiter(config.workers)
    app.state.store, app.state.config, app.state.colorizer = store, config, colorizer
    app.state.in_flight = app.state.peak_in_flight = app.state.pending = 0
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    background = anyio.CapacityLimiter(1)  # the views made after the colorization (grey, overlay, samples)

    async def model_call(fn, *args, limiter=limiter):
        """``fn(*args)`` in a worker thread, at most ``workers`` at once (and one background view beside
        them, so a recolour never queues behind the samples); counts them for the tests."""

        def counted():
            app.state.in_flight += 1
            app.state.peak_in_flight = max(app.state.peak_in_flight, app.state.in_flight)
            try:
                with torch.inference_mode():
                    return fn(*args)
            finally:
                app.state.in_flight -= 1

        return await anyio.to_thread.run_sync(counted, limiter=limiter)

    # -- errors ---------------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(_, err: ApiError):
        return JSONResponse({"error": err.message, "field": err.field}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_, err: RequestValidationError):
        first = err.errors()[0]
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        field = "body" if first.get("type") == "json_invalid" else ".".join(loc) or "body"
        return JSONResponse({"error": f"{field}: {first.get('msg', 'invalid')}", "field": field}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_, err: StarletteHTTPException):
        return JSONResponse({"error": f"path: {err.detail}", "field": "path"}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def internal(_, err: Exception):
        log.exception("internal error", exc_info=err)
        return JSONResponse({"error": "internal error", "field": None}, status_code=500)

    def session_of(handle: str) -> Session:
        try:
            return store.get(handle)
        except UnknownHandle:
            raise ApiError(
                404, "handle", f"handle: unknown or expired image handle {handle[:40]!r}"
            ) from None

    # -- what a response says ---------------------------------------------------------------------------
    def image_ref(handle: str, session: Session, name: str, encode: str) -> str:
        if encode == "base64":
            data = png_bytes(segment_png(session) if name == "segments" else session.image(name))
            return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        version = f"?v={session.version}" if name == "current" else ""
        return f"/api/images/{handle}/{name}.png{version}"

    def describe(handle: str, session: Session, encode: str = "url") -> dict:
        h, w = session.segments.shape
        refs = {n: image_ref(handle, session, n, encode) for n in ("grey", "colorized", "overlay", "current")}
        refs["segments"] = image_ref(handle, session, "segments", encode)
        refs["samples"] = [
            image_ref(handle, session, f"sample-{i}", encode) for i in range(session.num_samples)
        ]
        return {
            "handle": handle,
            "name": session.name,
            "width": w,
            "height": h,
            "expires_in": config.ttl,
            "version": session.version,
            "segment_levels": segment_levels(len(session.palettes)),
            "segments": session.palettes,
            "recoloured": sorted(session.recoloured),
            "images": refs,
        }

    def segment_png(session: Session) -> np.ndarray:
        return (session.segments * segment_levels(len(session.palettes))).astype(np.uint8)

    # -- the model's work -------------------------------------------------------------------------------
    def colorize_work(data: bytes, name: str | None, samples: int, seed: int) -> Session:
        rgb = decode_upload(data, config.max_pixels)
        photo = rgb if rgb.shape[-1] == 3 else _on_white(rgb)
        segments = colorizer.segment(rgb, dtype=np.uint8)

        def make(name: str) -> np.ndarray:  # the views the page shows after the colorization
            if name == "grey":
                return grey_image(photo)
            if name == "overlay":
                return overlay(session.image("grey"), segments)
            i = int(name.removeprefix("sample-"))  # sample i is drawn with seed + i, whatever the order
            return colorizer.sample(photo, 1, generator=torch.Generator().manual_seed(seed + i))[0]

        session = Session(
            name=safe_stem(name),
            photo=photo,
            colorized=colorizer.colorize(rgb),
            segments=segments,
            palettes=colorizer.palettes(rgb, config.palette_size),
            num_samples=samples,
            make=make,
        )
        return session

    # -- routes -----------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "model": {"arch": colorizer.arch, "segments": k, "run": str(colorizer.meta.get("run", ""))},
            "limits": {"max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels},
            "sessions": len(store),
        }

    @app.post(
        "/api/colorize",
        response_model=ColorizeResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The photo: a raw image body (any image/* type), or multipart/form-data with "
                "the file in the field 'image'. At most 20 MB and 40 Mpx.",
                "content": {
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"image": {"type": "string", "format": "binary"}},
                            "required": ["image"],
                        }
                    },
                },
            }
        },
        responses={
            413: {"description": "over 20 MB or 40 Mpx"},
            415: {"description": "not an image"},
            503: {"description": "max_pending photos are waiting already"},
        },
    )
    async def colorize(
        request: Request, samples: int = 3, seed: int = 0, name: str | None = None, encode: str = "url"
    ):
        """Colorize a photo: the colorization, the prior segments (as an overlay and as an id map), each
        segment's most probable colours, and ``samples`` coherent samples. Returns a handle for the other
        calls; it expires ``expires_in`` seconds after its last use."""
        if not 0 <= samples <= config.max_samples:
            raise ApiError(422, "samples", f"samples: expected 0..{config.max_samples}, got {samples}")
        if encode not in ("url", "base64"):
            raise ApiError(422, "encode", f"encode: expected 'url' or 'base64', got {encode!r}")
        if app.state.pending >= config.max_pending:  # the bound on uploads held in memory while they wait
            raise ApiError(503, "image", f"image: {app.state.pending} photos are waiting already; try again")
        app.state.pending += 1  # one event loop: no lock needed
        try:
            data, filename = await read_upload(request, config.max_upload_bytes)
            session = await model_call(colorize_work, data, name or filename, samples, seed)
        finally:
            app.state.pending -= 1
        try:
            handle = store.add(session)
        except MemoryError as err:
            raise ApiError(413, "image", f"image: {err}") from None
        return await anyio.to_thread.run_sync(describe, handle, session, encode)

    @app.get("/api/images/{handle}", response_model=ColorizeResponse)
    async def get_session(handle: str, encode: str = "url"):
        """The session of ``handle`` as POST /api/colorize returned it, with the current version."""
        return describe(handle, session_of(handle), encode)

    @app.get(
        "/api/images/{handle}/{image}.png",
        responses={200: {"content": {"image/png": {}}, "description": "a PNG"}},
        response_class=Response,
    )
    async def get_image(handle: str, image: str, download: bool = False):
        """One image of the session as PNG: ``grey``, ``photo``, ``colorized``, ``overlay``, ``current``,
        ``sample-<i>``, or ``segments`` (segment id × segment_levels, grey). ``download=true`` asks the
        browser to save it (as ``<name>_<image>.png``)."""
        if not IMAGE_NAME.match(image):
            raise ApiError(
                404,
                "image",
                f"image: expected one of photo, grey, colorized, overlay, segments, "
                f"current, sample-<i>; got {image[:40]!r}",
            )
        session = session_of(handle)
        if image != "segments" and image not in session.names:
            raise ApiError(
                404, "image", f"image: this session has {session.num_samples} samples, not {image!r}"
            )
        if image == "segments":
            array = segment_png(session)
        elif session.ready(image):
            array = session.image(image)
        else:  # made now, in a worker thread behind the model's limiter
            array = await model_call(session.image, image, limiter=background)
        data = await anyio.to_thread.run_sync(png_bytes, array, 6 if download else 0)
        headers = {"Cache-Control": "private, max-age=3600" if image != "current" else "no-cache"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{session.name}_{image}.png"'
        return Response(data, media_type="image/png", headers=headers)

    @app.post("/api/images/{handle}/recolour", response_model=ImageUpdate)
    async def recolour(handle: str, body: RecolourRequest, encode: str = "url"):
        """Recolour one segment everywhere it occurs: each of its pixels takes the mean of its own colour
        law in that segment tilted toward the chosen colour (`Colorizer.recolour`); every other pixel keeps
        its value. Give the colour as ``ab`` (CIE a, b, inside the sRGB gamut) or as ``rgb`` "#rrggbb"."""
        session = session_of(handle)
        segments = len(session.palettes)
        if not 0 <= body.segment < segments:
            raise ApiError(
                422, "segment", f"segment: expected a segment id in 0..{segments - 1}, got {body.segment}"
            )
        if (body.ab is None) == (body.rgb is None):
            raise ApiError(422, "ab", "ab: give the colour as exactly one of 'ab' [a, b] or 'rgb' '#rrggbb'")
        if body.rgb is not None:
            rgb = torch.tensor([int(body.rgb[i : i + 2], 16) for i in (1, 3, 5)], dtype=torch.float32) / 255
            ab = _nearest_in_gamut(colorizer, rgb_to_lab(rgb)[1:])
        else:
            ab = torch.tensor(body.ab, dtype=torch.float32)
            if not bool(colorizer.bins.in_gamut(ab)):
                raise ApiError(422, "ab", f"ab: ({body.ab[0]:g}, {body.ab[1]:g}) is outside the sRGB gamut")

        def work():
            with session.lock:
                image = colorizer.recolour(
                    session.photo,
                    body.segment,
                    ab.tolist(),
                    base=session.current,
                    segments=session.segments,
                    width=body.width,
                )
                return session.recolour(body.segment, image)

        changed = await model_call(work)
        return update(handle, session, encode, changed_pixels=changed, ab=ab.tolist())

    @app.post("/api/images/{handle}/sample", response_model=ImageUpdate)
    async def sample(handle: str, body: SampleRequest | None = None, encode: str = "url"):
        """A fresh coherent sample becomes the current image; recoloured segments keep their colours."""
        session = session_of(handle)
        seed = body.seed if body is not None and body.seed is not None else int(torch.randint(0, 2**31, ()))

        def work():
            drawn = colorizer.sample(session.photo, 1, generator=torch.Generator().manual_seed(seed))[0]
            with session.lock:
                session.set_current(drawn)

        await model_call(work)
        return update(handle, session, encode, seed=seed)

    @app.post("/api/images/{handle}/reset", response_model=ImageUpdate)
    async def reset(handle: str, encode: str = "url"):
        """Back to the colorization; every recolouring is dropped."""
        session = session_of(handle)
        with session.lock:
            session.recoloured.clear()
            session.set_current(session.colorized)
        return update(handle, session, encode)

    @app.delete("/api/images/{handle}")
    async def forget(handle: str) -> dict:
        """Forget a session now (it would expire anyway)."""
        if not store.remove(handle):
            raise ApiError(404, "handle", f"handle: unknown or expired image handle {handle[:40]!r}")
        return {"deleted": handle}

    def update(handle: str, session: Session, encode: str, **extra) -> dict:
        return {
            "handle": handle,
            "version": session.version,
            "recoloured": sorted(session.recoloured),
            "image": image_ref(handle, session, "current", encode),
            **extra,
        }

    @app.get("/api/examples", response_model=list[Example])
    async def examples():
        """The photos bundled with the package (held out of training), with their sources and licences."""
        return [
            {
                "id": e["id"],
                "url": f"/api/examples/{e['id']}",
                "source": f"{e['package']} {e['version']}",
                "licence": e["licence"],
            }
            for e in examples_index()
        ]

    @app.get(
        "/api/examples/{example:path}",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}},
    )
    async def example(example: str):
        """One bundled photo, by id (from GET /api/examples)."""
        if example not in {
            e["id"] for e in examples_index()
        }:  # ids only: no path from the client reaches the disk
            raise ApiError(
                404, "example", f"example: expected an id from /api/examples, got {example[:40]!r}"
            )
        return FileResponse(EXAMPLES / f"{example}.jpg", media_type="image/jpeg")

    return app


def examples_index() -> list[dict]:
    index = EXAMPLES / "index.json"
    return json.loads(index.read_text()) if index.exists() else []


def _on_white(rgba: np.ndarray) -> np.ndarray:
    from latentvar.colorize.lab import to_float_rgb

    return (to_float_rgb(rgba).numpy() * 255 + 0.5).astype(np.uint8)


def _nearest_in_gamut(colorizer: Colorizer, ab: torch.Tensor) -> torch.Tensor:
    """An sRGB colour's ab, or the nearest bin centre when it falls just outside the sampled gamut."""
    if bool(colorizer.bins.in_gamut(ab)):
        return ab
    return colorizer.bins.decode(colorizer.bins.encode(ab))
