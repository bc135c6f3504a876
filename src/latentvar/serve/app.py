"""The web app: a FastAPI application around one loaded `Colorizer` (docs/serve.md says why FastAPI).

Routes (the OpenAPI schema at /openapi.json is the reference; FastAPI's /docs and /redoc pages are off,
since they load Swagger UI and ReDoc from a CDN):

    GET  /                                   the page (static/index.html; its script and style under /static)
    POST /api/colorize                       an image in (raw body, or multipart field "image") -> a session
    GET  /api/images/{handle}                the session again (segments, palettes, image URLs)
    GET  /api/images/{handle}/{image}.png    grey | photo | colorized | overlay | segments | current | sample-i
    POST /api/images/{handle}/recolour       {"segment": k, "ab": [a, b]} or {"segment": k, "rgb": "#rrggbb"};
                                             "at": [x, y] recolours only the segment's region there
    POST /api/images/{handle}/sample         {"seed": s}: a fresh coherent sample under the recolourings
    POST /api/images/{handle}/reset          back to the colorization, recolourings dropped
    DELETE /api/images/{handle}
    GET  /api/examples, /api/examples/{id}   the bundled photos
    GET  /api/health                         the model being served

Nothing a request does runs long on the event loop: every model call, image build and PNG / base64
encoding runs in a worker thread (`anyio.to_thread`) behind a capacity limiter (``workers`` model calls,
default 1: the model uses both cores already; one more for the views made after the colorization; PNG
encodes of ready images behind their own), and a multipart body is split in a worker thread too, looking
at no more than 16 parts. `guard.Guard` checks every request's Host, Origin and token, and gives each body
a deadline. Errors are JSON ``{"error": "<field>: <what was expected>", "field": "<field>"}`` with a 4xx
status; an unexpected failure is a 500 saying only "internal error" (the traceback goes to the server's
log). Nothing is written to disk: uploads, images and sessions live in memory (`session.SessionStore`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from latentvar.colorize import Colorizer
from latentvar.colorize.colorizer import region_at
from latentvar.colorize.lab import rgb_to_lab
from latentvar.serve import memory
from latentvar.serve.guard import BodyTimeout, BodyTooLarge, Guard
from latentvar.serve.schema import (
    MAX_SEED,
    ColorizeResponse,
    Example,
    ImageUpdate,
    RecolourRequest,
    SampleRequest,
)
from latentvar.serve.session import Session, SessionStore, UnknownHandle
from latentvar.serve.uploads import ApiError, check_pixel, read_upload
from latentvar.serve.views import (  # noqa: F401 -- png_bytes, segment_levels: this module's names before
    build_session,
    describe,
    png_bytes,
    segment_levels,
    segment_png,
    update,
)

log = logging.getLogger("latentvar.serve")
STATIC = Path(__file__).resolve().parent / "static"
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "photo_examples"
IMAGE_NAME = re.compile(r"^(photo|grey|colorized|overlay|segments|current|sample-[0-9]{1,2})$")
ENCODINGS = ("url", "base64")
JSON_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's detail for a body json.loads refused


@dataclass
class ServeConfig:
    max_upload_bytes: int = 20 * 1000 * 1000  # 20 MB
    max_pixels: int = 40 * 1000 * 1000  # 40 Mpx
    max_samples: int = 8
    palette_size: int = 8
    store_bytes: int = 1 << 30  # the sessions (arrays + `session.OVERHEAD` each), in all
    ttl: float = 1800.0  # seconds a session lives after its last use
    workers: int = 1  # model calls at once
    max_pending: int = 32  # complete uploads waiting for the model at once; more get 503
    max_reading: int = 16  # uploads being received at once (each under the body deadlines); more get 503
    body_timeout: float = 120.0  # seconds a request body may take in all (408 after)
    idle_timeout: float = 10.0  # seconds between two pieces of a body (408 after)
    max_json_bytes: int = 64 * 1024  # a body other than an upload (413 over)
    allowed_hosts: tuple[str, ...] = ()  # Host names served beside localhost and IP addresses
    token: str | None = None  # with a token, every request must carry it (guard.Guard)
    trim_memory: bool = True  # give freed heap back to the system after each model call (memory.trim)


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
    background = anyio.CapacityLimiter(1)  # the views made after the colorization (grey, overlay, samples)
    encoder = anyio.CapacityLimiter(config.workers + 1)  # PNG encodes of images already made
    app.state.store, app.state.config, app.state.colorizer = store, config, colorizer
    app.state.in_flight = app.state.peak_in_flight = app.state.pending = app.state.reading = 0
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(
        Guard,
        allowed_hosts=config.allowed_hosts,
        token=config.token,
        body_timeout=config.body_timeout,
        idle_timeout=config.idle_timeout,
        max_json_bytes=config.max_json_bytes,
    )

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
                if config.trim_memory:
                    memory.trim()

        return await anyio.to_thread.run_sync(counted, limiter=limiter)

    # -- errors ---------------------------------------------------------------------------------------
    def error(status: int, field: str, message: str, **headers) -> JSONResponse:
        return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers or None)

    @app.exception_handler(ApiError)
    async def api_error(_, err: ApiError):
        return error(err.status, err.field, err.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_, err: RequestValidationError):
        first = err.errors()[0]
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        field = "body" if first.get("type") == "json_invalid" else ".".join(loc) or "body"
        return error(422, field, f"{field}: {first.get('msg', 'invalid')}")

    @app.exception_handler(BodyTimeout)
    async def too_slow(_, err: BodyTimeout):
        return error(408, "body", str(err), Connection="close")

    @app.exception_handler(BodyTooLarge)
    async def too_large(_, err: BodyTooLarge):
        return error(413, "body", str(err), Connection="close")

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, _):
        log.warning("client disconnected before its request body was complete: %s", request.url.path)
        return Response(status_code=400)  # nobody reads it

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        cause = err.__cause__
        if err.detail == JSON_PARSE_ERROR and cause is not None:  # FastAPI's wrap of a body it could not read
            for kind in (BodyTimeout, BodyTooLarge, ClientDisconnect):
                if isinstance(cause, kind):
                    return await app.exception_handlers[kind](request, cause)
            reason = "not UTF-8" if isinstance(cause, UnicodeDecodeError) else "nested too deeply or invalid"
            return error(422, "body", f"body: expected a JSON object in UTF-8, this one is {reason}")
        return error(err.status_code, "path", f"path: {err.detail}")

    @app.exception_handler(Exception)
    async def internal(_, err: Exception):
        log.exception("internal error", exc_info=err)
        return error(500, None, "internal error")

    def session_of(handle: str) -> Session:
        try:
            return store.get(handle)
        except UnknownHandle:
            raise ApiError(
                404, "handle", f"handle: unknown or expired image handle {handle[:40]!r}"
            ) from None

    def check_encode(encode: str) -> None:
        if encode not in ENCODINGS:
            raise ApiError(422, "encode", f"encode: expected 'url' or 'base64', got {encode[:40]!r}")

    async def respond(work, *args, encode: str = "url"):
        """``work(*args)`` (a JSON body) where it belongs: on the loop when it only names URLs, in a
        model call when it builds or encodes images (``encode="base64"``)."""
        return await model_call(work, *args) if encode == "base64" else work(*args)

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
            408: {"description": "the body did not arrive within the deadlines"},
            413: {"description": "over 20 MB or 40 Mpx"},
            415: {"description": "not an image"},
            503: {"description": "max_pending photos are waiting already, or max_reading are arriving"},
        },
    )
    async def colorize(
        request: Request, samples: int = 3, seed: int = 0, name: str | None = None, encode: str = "url"
    ):
        """Colorize a photo: the colorization, the prior segments (as an overlay and as an id map), each
        segment's most probable colours, and ``samples`` coherent samples (sample i drawn with seed
        ``seed + i``, 0 <= seed < 2**63). Returns a handle for the other calls; it expires ``expires_in``
        seconds after its last use."""
        if not 0 <= samples <= config.max_samples:
            raise ApiError(422, "samples", f"samples: expected 0..{config.max_samples}, got {samples}")
        if not 0 <= seed <= MAX_SEED:
            raise ApiError(422, "seed", f"seed: expected an integer in 0..2**63-1, got {str(seed)[:40]}")
        check_encode(encode)
        if app.state.pending >= config.max_pending:  # the bound on uploads held in memory while they wait
            raise ApiError(503, "image", f"image: {app.state.pending} photos are waiting already; try again")
        if app.state.reading >= config.max_reading:  # and on those arriving (each under the body deadlines)
            raise ApiError(
                503, "image", f"image: {app.state.reading} uploads are arriving already; try again"
            )
        app.state.reading += 1  # one event loop: no lock needed
        try:
            data, filename = await read_upload(request, config.max_upload_bytes)
        finally:
            app.state.reading -= 1
        if app.state.pending >= config.max_pending:
            raise ApiError(503, "image", f"image: {app.state.pending} photos are waiting already; try again")
        handle = store.new_handle()

        def work():  # the session and its response: with encode=base64 its views are made here, in the slot
            args = (colorizer, data, name or filename, samples, seed, config.max_pixels, config.palette_size)
            session = build_session(*args)
            return session, describe(handle, session, encode, config.ttl)

        app.state.pending += 1
        try:
            session, body = await model_call(work)
        finally:
            app.state.pending -= 1
        try:  # stored only once its response is made, so every stored handle is one a client was given
            store.add(session, handle)
        except MemoryError as err:
            raise ApiError(413, "image", f"image: {err}") from None
        return body

    @app.get("/api/images/{handle}", response_model=ColorizeResponse)
    async def get_session(handle: str, encode: str = "url"):
        """The session of ``handle`` as POST /api/colorize returned it, with the current version."""
        check_encode(encode)
        return await respond(describe, handle, session_of(handle), encode, config.ttl, encode=encode)

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
        level = 6 if download else 0

        def encoded():
            return png_bytes(segment_png(session) if image == "segments" else session.image(image), level)

        if image == "segments" or session.ready(image):
            data = await anyio.to_thread.run_sync(encoded, limiter=encoder)
        else:  # made now, in a worker thread behind the model's limiter
            data = await model_call(encoded, limiter=background)
        headers = {"Cache-Control": "private, max-age=3600" if image != "current" else "no-cache"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{session.name}_{image}.png"'
        return Response(data, media_type="image/png", headers=headers)

    @app.post("/api/images/{handle}/recolour", response_model=ImageUpdate)
    async def recolour(handle: str, body: RecolourRequest, encode: str = "url"):
        """Recolour one segment everywhere it occurs, or with ``at`` = [x, y] only its connected region that
        holds that pixel: each of those pixels takes the mean of its own colour law in that segment tilted
        toward the chosen colour (`Colorizer.recolour`); every other pixel keeps its value. Give the colour
        as ``ab`` (CIE a, b, inside the sRGB gamut) or as ``rgb`` "#rrggbb"."""
        check_encode(encode)
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

        check_pixel("at", body.at, body.segment, session.segments)

        def work():
            with session.lock:
                where = None if body.at is None else region_at(session.segments, body.at[0], body.at[1])
                image = colorizer.recolour(
                    session.photo,
                    body.segment,
                    ab.tolist(),
                    base=session.current,
                    segments=session.segments,
                    width=body.width,
                    where=where,
                )
                changed = session.recolour(body.segment, image, where)
                return update(handle, session, encode, changed_pixels=changed, ab=ab.tolist())

        return await model_call(work)

    @app.post("/api/images/{handle}/sample", response_model=ImageUpdate)
    async def sample(handle: str, body: SampleRequest | None = None, encode: str = "url"):
        """A fresh coherent sample becomes the current image; recoloured segments keep their colours."""
        check_encode(encode)
        session = session_of(handle)
        seed = body.seed if body is not None and body.seed is not None else int(torch.randint(0, 2**31, ()))

        def work():
            drawn = colorizer.sample(session.photo, 1, generator=torch.Generator().manual_seed(seed))[0]
            with session.lock:
                session.set_current(drawn)
                return update(handle, session, encode, seed=seed)

        return await model_call(work)

    @app.post("/api/images/{handle}/reset", response_model=ImageUpdate)
    async def reset(handle: str, encode: str = "url"):
        """Back to the colorization; every recolouring is dropped."""
        check_encode(encode)
        session = session_of(handle)

        def work():
            with session.lock:
                session.clear_recolourings()
                session.set_current(session.colorized)
                return update(handle, session, encode)

        return await model_call(work)

    @app.delete("/api/images/{handle}")
    async def forget(handle: str) -> dict:
        """Forget a session now (it would expire anyway)."""
        if not store.remove(handle):
            raise ApiError(404, "handle", f"handle: unknown or expired image handle {handle[:40]!r}")
        return {"deleted": handle}

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


def _nearest_in_gamut(colorizer: Colorizer, ab: torch.Tensor) -> torch.Tensor:
    """An sRGB colour's ab, or the nearest bin centre when it falls just outside the sampled gamut."""
    if bool(colorizer.bins.in_gamut(ab)):
        return ab
    return colorizer.bins.decode(colorizer.bins.encode(ab))
