"""`latentvar serve`: a local web app where a person colorizes a photo and recolours it one latent segment
at a time (docs/serve.md). `app.create_app` builds the FastAPI application around one loaded `Colorizer`;
`session` holds what it remembers of each photo; `static/` is the page (no build step, no CDN)."""

from latentvar.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
