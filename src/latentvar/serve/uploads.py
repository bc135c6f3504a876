"""Uploads: reading a request's image within the limits, decoding it, and what a client's file name may
become (a download's name, never a path). Errors are `ApiError`: a status, the field, a message."""

from __future__ import annotations

import email.parser
import email.policy
import io
import re
from pathlib import PurePosixPath

import anyio
import numpy as np
from fastapi import Request

from latentvar.colorize.images import ImageReadError, ImageTooLargeError, read_image_rgb_uint8


class ApiError(Exception):
    """A bad request: the HTTP ``status``, the ``field`` at fault, and a message that starts with it."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def safe_stem(name: str | None) -> str:
    """A file name as it may appear in a download's name: its last component's stem, only [A-Za-z0-9_-],
    at most 64 characters; never a path (``../../etc/passwd`` -> ``passwd``)."""
    last = PurePosixPath(str(name or "").replace("\\", "/")).name
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", last.rsplit(".", 1)[0] if "." in last else last).strip("_")
    return stem[:64] or "photo"


MAX_PARTS = 16  # parts of a multipart body looked at; a form sends one or two
MAX_PART_HEADER = 16 * 1024  # bytes of one part's headers


def _multipart_file(body: bytes, content_type: str) -> tuple[bytes, str | None]:
    """The first file of a multipart/form-data body (field "image" preferred): (bytes, client file name).

    Parts are found with ``bytes.find`` (linear, in C) and at most `MAX_PARTS` are looked at (400 beyond),
    so a body of 380,000 empty fields costs one pass, not one parse per field; only each part's headers
    (at most `MAX_PART_HEADER` bytes) go through the `email` header parser. Called in a worker thread."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    boundary = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head).get_boundary()
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "image", "image: expected a multipart/form-data body with a boundary")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    start = body.find(delimiter)
    files = []
    for _ in range(MAX_PARTS + 1):
        if start < 0 or body[start + len(delimiter) : start + len(delimiter) + 2] == b"--":
            break  # no more parts, or the closing delimiter
        if len(files) == MAX_PARTS:
            raise ApiError(400, "image", f"image: expected at most {MAX_PARTS} parts in a multipart body")
        line_end = body.find(b"\r\n", start + len(delimiter), start + len(delimiter) + 256)
        begin = start + len(delimiter) if line_end < 0 else line_end + 2  # past the delimiter's line
        end = body.find(b"\r\n" + delimiter, begin)
        stop = len(body) if end < 0 else end
        split = body.find(b"\r\n\r\n", begin, min(stop, begin + MAX_PART_HEADER))
        if split < 0:
            raise ApiError(400, "image", "image: a multipart part without headers (or over 16 KiB of them)")
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(body[begin : split + 2])
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_filename()
        if filename is not None or name in ("image", "file"):  # (offsets: the file is copied out once)
            files.append((name != "image", len(files), (split + 4, stop), filename))
        else:
            files.append(None)
        start = end + 2 if end >= 0 else -1
    found = sorted(f for f in files if f is not None)
    if not found:
        raise ApiError(400, "image", "image: expected a file in the multipart field 'image'")
    (first, last), filename = found[0][2], found[0][3]
    return body[first:last], filename


async def read_upload(request: Request, limit: int) -> tuple[bytes, str | None]:
    """The uploaded file of a request, read in chunks and refused (413) as soon as it passes ``limit`` bytes:
    the raw body (its name from ``?name=``), or the file of a multipart/form-data body (its own name)."""
    slack = 64 * 1024  # multipart headers around the file
    too_big = ApiError(413, "image", f"image: expected at most {limit:,} bytes ({limit / 1e6:g} MB)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + slack:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + slack:
            raise too_big
        chunks.append(chunk)
    body = b"".join(chunks)
    content_type = request.headers.get("content-type", "")
    name = request.query_params.get("name")
    if content_type.startswith("multipart/form-data"):  # parsed off the event loop
        body, name = await anyio.to_thread.run_sync(_multipart_file, body, content_type)
    if len(body) > limit:
        raise too_big
    if not body:
        raise ApiError(400, "image", "image: expected an image file in the request body, got nothing")
    return body, name


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """The upload's pixels (upright sRGB uint8, (h, w, 3|4)); 413 over ``max_pixels`` (checked before
    decoding), 415 for anything that is not an image Pillow reads."""
    try:
        return read_image_rgb_uint8(io.BytesIO(data), max_pixels=max_pixels)
    except ImageTooLargeError as err:
        raise ApiError(
            413,
            "image",
            f"image: {err.width}×{err.height} = {err.width * err.height:,} pixels is over "
            f"the limit of {max_pixels:,} pixels",
        ) from None
    except ImageReadError:
        raise ApiError(
            415,
            "image",
            "image: expected an image file (JPEG, PNG, TIFF, BMP, GIF, WebP or AVIF); "
            "this body cannot be read as one",
        ) from None


def check_pixel(name: str, at, segment: int, segments) -> None:
    """``at`` = [x, y] (or None) must be a pixel of the photo (``segments`` (h, w)) inside ``segment``."""
    if at is None:
        return
    h, w = segments.shape
    x, y = at
    if not (0 <= x < w and 0 <= y < h):
        raise ApiError(422, name, f"{name}: expected a pixel [x, y] inside the {w} x {h} photo, got {at}")
    if (found := int(segments[y, x])) != segment:
        raise ApiError(422, name, f"{name}: pixel {at} lies in segment {found}, not {segment}")
