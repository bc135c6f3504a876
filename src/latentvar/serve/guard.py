"""Who may use the app and how long a request may take to send its body: one ASGI middleware (`Guard`) in
front of every route (docs/serve.md, "Who can use it").

- **Host**: a request's ``Host`` must name this server -- ``localhost`` (or ``*.localhost``), an IP
  address, the bound host, or one added with ``--allowed-host`` -- else 400. A DNS-rebinding page reaches
  the server under its own domain name, which is none of these (an IP literal cannot be rebound).
- **Origin**: a state-changing request (POST, PUT, PATCH, DELETE) that carries an ``Origin`` must come
  from the page's own origin (same host and port as ``Host``), and one without ``Origin`` but with
  ``Sec-Fetch-Site`` must say ``same-origin`` or ``none``; else 403. A form or ``fetch`` from another
  site is a CORS "simple" request that would otherwise reach the handler; scripts (curl, Python) send
  neither header and are let through.
- **Token** (``--token``): every request but the page's static files must carry it, as
  ``Authorization: Bearer <token>``, the cookie the page gets, or ``?token=`` (which, on ``/``, sets that
  cookie and redirects to ``/``, so the token leaves the address bar); else 401.
- **Bodies**: each body message must arrive within ``idle_timeout`` seconds of the last and the whole
  body within ``body_timeout`` (`BodyTimeout`, answered 408 and the connection closed), and a body other
  than an upload is at most ``max_json_bytes`` (`BodyTooLarge`, 413): a slow or idle sender loses its
  slot instead of holding it.
- **Headers** on every response: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
  ``Referrer-Policy: no-referrer`` and a Content-Security-Policy allowing only the app's own scripts,
  styles, images and connections.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import anyio
from starlette.responses import JSONResponse, RedirectResponse

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode("ascii")),
]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
COOKIE = "latentvar_token"
UPLOAD_PATH = "/api/colorize"


class BodyTimeout(Exception):
    """The request body did not arrive in time (answered 408)."""


class BodyTooLarge(Exception):
    """A body other than an upload over its limit (answered 413)."""


def host_name(host: str) -> str:
    """The host of a ``Host`` header, without its port, lower case: ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``Host`` names this server (module docstring)."""
    name = host_name(host).rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name in {host_name(a) for a in allowed}:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """The middleware (module docstring). ``allowed_hosts``: the bound host and ``--allowed-host``."""

    def __init__(
        self,
        app,
        allowed_hosts: Iterable[str] = (),
        token: str | None = None,
        body_timeout: float = 120.0,
        idle_timeout: float = 10.0,
        max_json_bytes: int = 64 * 1024,
    ):
        self.app, self.allowed, self.token = app, tuple(allowed_hosts), token
        self.body_timeout, self.idle_timeout, self.max_json_bytes = body_timeout, idle_timeout, max_json_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def secured(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            return await refusal(scope, receive, secured)
        await self.app(scope, self.timed(scope["path"], receive), secured)

    def refusal(self, scope, headers: dict[str, str]):
        """The response refusing this request, or None to let it through."""
        host = headers.get("host")
        if host is not None and not host_allowed(host, self.allowed):
            return _error(400, "host", f"host: {host[:80]!r} is not this server's name (see --allowed-host)")
        if self.token is not None:
            granted = self.granted(scope, headers)
            if granted is not None:
                return granted
        if scope["method"] in WRITES:
            origin = headers.get("origin")
            if origin is not None:
                parts = urlsplit(origin) if origin != "null" else None
                if parts is None or parts.scheme not in ("http", "https") or parts.netloc != host:
                    return _error(403, "origin", f"origin: {origin[:80]!r} may not change this app's state")
            elif headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return _error(403, "origin", "origin: a request from another site may not change this app")
        return None

    def granted(self, scope, headers: dict[str, str]):
        """With ``--token``: None when the request carries it (or needs none), else the response."""
        if scope["path"].startswith("/static/"):
            return None
        offered = []
        if headers.get("authorization", "").startswith("Bearer "):
            offered.append(headers["authorization"][len("Bearer ") :])
        if "cookie" in headers:
            cookie = SimpleCookie()
            try:
                cookie.load(headers["cookie"])
            except Exception:  # noqa: BLE001 -- a malformed cookie header is no token
                pass
            if COOKIE in cookie:
                offered.append(cookie[COOKIE].value)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        in_query = query.get("token", [])[:1]
        if any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered):
            return None
        if in_query and hmac.compare_digest(in_query[0].encode(), self.token.encode()):
            if scope["path"] == "/" and scope["method"] == "GET":
                page = RedirectResponse("/", status_code=303)
                page.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return page
            return None
        return _error(401, "token", "token: this server needs its token (the URL it printed carries it)")

    def timed(self, path: str, receive):
        """``receive`` with the body deadlines and, except for uploads, the body size limit."""
        deadline = time.monotonic() + self.body_timeout
        limit = None if path == UPLOAD_PATH else self.max_json_bytes
        state = {"done": False, "size": 0}

        async def timed_receive():
            if state["done"]:  # the body is in: what follows (a disconnect) may take any time
                return await receive()
            wait = min(self.idle_timeout, deadline - time.monotonic())
            message = None
            with anyio.move_on_after(max(wait, 0)):
                message = await receive()
            if message is None:
                raise BodyTimeout(
                    f"body: not received within {self.body_timeout:g} s (or {self.idle_timeout:g} s idle)"
                )
            if message["type"] == "http.request":
                state["size"] += len(message.get("body", b""))
                if limit is not None and state["size"] > limit:
                    raise BodyTooLarge(f"body: expected at most {limit:,} bytes")
                state["done"] = not message.get("more_body", False)
            else:
                state["done"] = True
            return message

        return timed_receive


def _error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)
