"""`latentvar serve`: the local web app (latentvar.serve, docs/serve.md)."""

from __future__ import annotations

import typer

from latentvar.cli import flags
from latentvar.cli._errors import user_errors


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind: loopback unless told otherwise."),
    port: int = typer.Option(8000, help="TCP port (0: any free one)."),
    run: str = typer.Option(
        None, help="A run directory, or a shipped model: 'photo' (the default) or 'twemoji'."
    ),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    workers: int = typer.Option(1, help="Model calls at once (each uses all of torch's threads)."),
    store_mb: int = typer.Option(
        1024, help="Memory for the photos being worked on, in MiB (oldest forgotten first)."
    ),
    ttl: float = typer.Option(1800.0, help="Seconds a photo is kept after its last use."),
    allowed_host: list[str] = typer.Option(
        None, help="A host name the server answers to beside localhost and IP addresses (repeatable)."
    ),
    token: str = typer.Option(
        None,
        envvar="LATENTVAR_SERVE_TOKEN",
        help="Require this token on every request (the printed URL carries it); for --host beyond loopback.",
    ),
) -> None:
    """Start the web app: colorize a photo in the browser and recolour it one latent segment at a time."""
    import math
    import socket

    with user_errors():
        try:
            socket.getaddrinfo(host, None)
        except (OSError, UnicodeError) as err:
            raise ValueError(
                f"host: cannot resolve {host!r} ({getattr(err, 'strerror', None) or err})"
            ) from None
        if not 0 <= port <= 65535:
            raise ValueError(f"port: expected 0..65535, got {port}")
        flags.count("workers", workers, maximum=1024)
        flags.count("store-mb", store_mb, minimum=16, maximum=2**30)  # 16 MiB .. 1 PiB
        flags.model_run("run", run)
        flags.device("device", device)
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl: expected a positive number of seconds, got {ttl}")
        for name in allowed_host or []:
            if not name or any(c in name for c in "/ \t@?#"):
                raise ValueError(f"allowed-host: expected a host name, got {name!r}")
        if token is not None and (len(token) < 16 or not token.isprintable() or " " in token):
            raise ValueError("token: expected at least 16 printable characters without spaces")
        import uvicorn

        from latentvar.colorize.colorizer import Colorizer
        from latentvar.serve import ServeConfig, create_app
        from latentvar.serve.memory import tune_allocator

        tune_allocator()  # image-sized buffers get their own mappings, freed at once (serve/memory.py)
        colorizer = Colorizer.load(run, device=device)
        config = ServeConfig(
            workers=workers,
            store_bytes=store_mb << 20,
            ttl=ttl,
            allowed_hosts=(host, *(allowed_host or [])),
            token=token,
        )
        app = create_app(colorizer, config)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)  # listening before the URL is printed: early clients wait in the backlog
        except OSError as err:
            raise ValueError(f"port: cannot listen on {host}:{port} ({err.strerror})") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if not _loopback(host):
        typer.echo(
            f"warning: --host {host} is not loopback: anyone who can reach this machine can use the app"
            + ("" if token else " (no authentication: consider --token)"),
            err=True,
        )
    query = f"?token={token}" if token else ""
    typer.echo(
        f"latentvar serve: http://{shown}:{bound}/{query}  (model {colorizer.arch}; Ctrl-C to stop)",
        err=False,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def _loopback(host: str) -> bool:
    """Whether ``host`` binds to loopback only (127.0.0.0/8, ::1, or a name resolving only there)."""
    import ipaddress
    import socket

    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
