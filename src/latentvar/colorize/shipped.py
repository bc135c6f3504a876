"""The models that ship with the package: ``photo`` (the default: the learned segment prior), ``twemoji``,
``photo-levels`` (the learned prior with a colour law per lightness level: more colour, looser segments)
and ``photo-lightness`` (the photo model before the learned prior: more colour, speckled segments).

Each is a folder under ``latentvar/data/models/<name>/`` holding ``checkpoint.safetensors`` (weights
only), ``checkpoint.json`` (config, metrics, the decoding temperature chosen on val) and ``MODEL_CARD.md``;
``scripts/colorize_models_build.sh`` rebuilds both from the registries.
"""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "data" / "models"
SHIPPED = ("photo", "twemoji", "photo-lightness", "photo-levels")
DEFAULT = "photo"


def shipped_path(name: str) -> Path:
    if name not in SHIPPED:
        raise ValueError(f"run: expected one of the shipped models {SHIPPED}, got {name!r}")
    path = MODELS_DIR / name
    if not (path / "checkpoint.json").is_file():
        raise FileNotFoundError(f"run: the shipped {name!r} model is missing from this install ({path})")
    return path


def resolve_run(run: str | os.PathLike | None) -> Path:
    """None -> the shipped photo model; a shipped name (that is not also an existing path) -> its folder;
    anything else -> the run folder itself."""
    if run is None:
        return shipped_path(DEFAULT)
    if str(run) in SHIPPED and not Path(run).exists():
        return shipped_path(str(run))
    return Path(run)
